"""Expected problems, kept apart from bugs.

A ``UserError`` is something the user can fix (a bad ADR, a corrupt results file, a scenario field
out of range). The CLI prints its message on one line and exits 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

__all__ = ["ResultsError", "ScenarioError", "UserError", "excerpt"]


class UserError(Exception):
    """A problem in the user's input. The message names the file, the value and the fix."""


class ScenarioError(UserError):
    """A scenario or suite definition that cannot be run as written."""


class ResultsError(UserError):
    """A results file that is missing, corrupt, or of another schema version."""


def excerpt(value: object, limit: int = 60) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters: a hostile 40 KB value
    is named, not echoed.

    Args:
        value: What the message quotes.
        limit: Characters of its repr to keep.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    length = f" ({len(value)} characters)" if isinstance(value, str | bytes) else ""
    return f"{text[:limit]}...{length}"
