"""Verdicts: what the facts say about each claim, revisit trigger and premise of an ADR.

Types first (shared by ``check``, ``render`` and tests); the evaluation that produces them lives
below. Unknown is its own outcome and is never shown as fine.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Kind", "Outcome", "Verdict", "AdrVerdicts"]


class Kind(enum.StrEnum):
    CLAIM = "claim"
    TRIGGER = "trigger"  # a revisit_when condition
    PREMISE = "premise"


class Outcome(enum.StrEnum):
    # triggers
    FIRED = "fired"
    NOT_FIRED = "not fired"
    # claims
    HOLDS = "holds"
    FAILS = "fails"
    # premises (a premise that no longer holds is stale; a premise that holds uses HOLDS)
    STALE = "stale"
    # any kind: no results yet, scenario skipped/failed, fact missing
    UNKNOWN = "unknown"

    @property
    def needs_attention(self) -> bool:
        """True for outcomes that reopen the decision (exit 1 in ``adrbench check``)."""
        return self in (Outcome.FIRED, Outcome.FAILS, Outcome.STALE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One judged item.

    Args:
        kind: claim, trigger or premise.
        id: The item's id in the ADR front matter.
        text: Its human sentence.
        expression: The expression as written in the ADR.
        outcome: The verdict.
        values: The facts that decided it, by dotted name (e.g. {"model.parameters": 22713216}).
        reason: Why the outcome is unknown (or other short context); None when plain.
    """

    kind: Kind
    id: str
    text: str
    expression: str
    outcome: Outcome
    values: Mapping[str, object]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AdrVerdicts:
    """All verdicts of one ADR, plus what it takes as evidence."""

    number: int
    title: str
    path: str
    status: str
    evidence: tuple[str, ...]
    verdicts: tuple[Verdict, ...]

    @property
    def needs_attention(self) -> bool:
        return any(v.outcome.needs_attention for v in self.verdicts)

    def of_kind(self, kind: Kind) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.kind is kind)
