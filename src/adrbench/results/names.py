"""Names that become file names, and writes that stay inside the folder they belong to.

A run id names ``results/runs/<run_id>.json``; an environment fingerprint, a suite and a profile
name a baseline file. All of them arrive in files that travel between machines and people, so one
rule holds for every one of them (as wheel installers refuse ``../`` in an archive): letters,
digits and ``. _ + -``, starting with a letter or digit (so never ``.``, ``..`` or a hidden file),
at most :data:`MAX_NAME_LENGTH` characters. On top of the rule, :func:`confined` resolves every
path that is about to be written and refuses one that would land outside its folder, before
anything is created.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["MAX_NAME_LENGTH", "NAME_RULE", "confined", "name_problem"]

MAX_NAME_LENGTH = 128
NAME_RULE = (
    f"letters, digits and . _ + -, starting with a letter or digit, at most {MAX_NAME_LENGTH} "
    "characters"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def name_problem(value: object) -> str | None:
    """Why ``value`` cannot name a file under adrbench's rule, or None when it can.

    Args:
        value: A run id, environment fingerprint, suite or profile name.
    """
    if not isinstance(value, str):
        return f"expected text, got {type(value).__name__}"
    if not value:
        return "it is empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"it is {len(value)} characters long (at most {MAX_NAME_LENGTH})"
    if _NAME.fullmatch(value) is None:
        bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "._+-"))})
        what = f"it holds {''.join(bad)!r}" if bad else f"it starts with {value[0]!r}"
        return f"{what}; a name is {NAME_RULE}"
    return None


def confined(path: Path, folder: Path) -> Path:
    """``path``, once checked to resolve inside ``folder`` (symbolic links followed).

    Args:
        path: The file about to be written.
        folder: The folder it must lie in.

    Raises:
        ValueError: ``path`` would land outside ``folder``; nothing has been created.
    """
    target = path.resolve()
    home = folder.resolve()
    if not target.is_relative_to(home) or target == home:
        raise ValueError(f"{path} resolves to {target}, outside {home}")
    return path
