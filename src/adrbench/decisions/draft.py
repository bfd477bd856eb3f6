"""A superseding draft: when an ADR's revisit trigger fires, a ``proposed`` MADR record to finish.

The draft names the fired trigger(s), the evidence of each environment where one fired (the run,
its scenarios, the ADR's verdicts there) and the options to weigh (the old record's options plus
keeping it), and leaves the decision to a person: every place to write is marked ``TODO``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from adrbench.decisions.adr import Adr
from adrbench.decisions.verdicts import AdrVerdicts, Kind, Outcome, Verdict
from adrbench.results.record import RunRecord, Status
from adrbench.units import format_bytes

__all__ = ["FiredEvidence", "draft_file_name", "render_draft"]


@dataclass(frozen=True, slots=True)
class FiredEvidence:
    """An environment where a trigger of the ADR fired: its run and the ADR's verdicts there."""

    run: RunRecord
    verdicts: AdrVerdicts

    @property
    def fired(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts.of_kind(Kind.TRIGGER) if v.outcome is Outcome.FIRED)


def _shown(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].rstrip("-")


def draft_file_name(number: int, old: Adr) -> str:
    """``NNNN-revisit-<old file's slug>.md``."""
    old_slug = old.path.stem.split("-", 1)[1] if "-" in old.path.stem else _slug(old.title)
    return f"{number:04d}-revisit-{old_slug}.md"


def _section(body: str, heading: str) -> list[str]:
    """The bullet lines of a ``## heading`` section of the old body."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", body, re.M | re.S)
    if not match:
        return []
    return [line for line in match.group(1).splitlines() if line.startswith("* ")]


def _scenario_rows(run: RunRecord) -> list[str]:
    rows = [
        "| scenario | status | samples/s | peak memory (source) | test Spearman before -> after |",
        "|---|---|---|---|---|",
    ]
    for result in run.scenarios:
        m = result.metrics
        if result.status is not Status.OK or m is None:
            why = (
                result.skip.reason if result.skip else result.failure.kind if result.failure else ""
            )
            rows.append(f"| {result.name} | {result.status.value} ({why}) | | | |")
            continue
        before = m.before["test"].spearman if m.before and "test" in m.before else None
        after = m.after["test"].spearman if "test" in m.after else None
        spearman = (f"{before:.3f} -> " if before is not None else "") + (
            f"{after:.3f}" if after is not None else ""
        )
        memory = f"{format_bytes(m.memory.peak_memory_bytes)} ({m.memory.peak_memory_source})"
        rows.append(
            f"| {result.name} | ok | {m.throughput.samples_per_s:.1f} | {memory} | {spearman} |"
        )
    return rows


def _verdict_rows(verdicts: AdrVerdicts) -> list[str]:
    rows = ["| verdict | kind | id | condition |", "|---|---|---|---|"]
    for v in verdicts.verdicts:
        rows.append(f"| {v.outcome.value} | {v.kind.value} | {v.id} | `{v.expression}` |")
    return rows


def render_draft(old: Adr, evidence: Sequence[FiredEvidence], *, date: str) -> str:
    """The draft's Markdown: MADR 4 front matter (``status: proposed``, ``supersedes``) and body.

    Args:
        old: The ADR whose trigger fired.
        evidence: Each environment where a trigger fired (at least one).
        date: Today, ``YYYY-MM-DD``.
    """
    fired_ids = sorted({v.id for e in evidence for v in e.fired})
    evidence_list = ", ".join(old.evidence)
    lines = [
        "---",
        "status: proposed",
        f"date: {date}",
        "decision-makers: []  # TODO: who decides",
        "consulted: []",
        "informed: []",
        f"supersedes: [{old.number}]",
        f"evidence: [{evidence_list}]",
        "---",
        "",
        f"# Revisit ADR-{old.number:04d}: {old.title}",
        "",
        "<!-- A draft written by `adrbench draft` because a revisit trigger fired. Finish every",
        "     TODO, add claims / revisit_when to the front matter, then set the status. -->",
        "",
        "## Context and Problem Statement",
        "",
        f"ADR-{old.number:04d} ([{old.path.name}]({old.path.name})) named when it should be "
        f"revisited; {len(fired_ids)} of its triggers fired: {', '.join(fired_ids)}.",
        "",
    ]
    for item in evidence:
        run, env = item.run, item.run.environment
        lines += [
            f"### Where it fired: environment {env.fingerprint} ({env.device_kind}, "
            f"{env.device_name})",
            "",
        ]
        for v in item.fired:
            shown = ", ".join(f"{k} = {_shown(val)}" for k, val in v.values.items())
            lines.append(f"* Trigger `{v.id}` fired: {v.text} (`{v.expression}`; {shown}).")
        lines += [
            "",
            f"Run `{run.run_id}` (suite {run.suite}, profile {run.profile}, started "
            f"{run.started_at}):",
            "",
            *_scenario_rows(run),
            "",
            f"ADR-{old.number:04d} judged on this run:",
            "",
            *_verdict_rows(item.verdicts),
            "",
        ]
    lines += [
        "TODO: what the evidence shows, in our own words.",
        "",
        "## Considered Options",
        "",
        f"* Keep ADR-{old.number:04d} as it is (TODO: why the fired trigger does not change it)",
        *_section(old.body, "Considered Options"),
        "",
        "## Decision Outcome",
        "",
        'TODO: Chosen option: "...", because ...',
        "",
        "## More Information",
        "",
        f"Supersedes ADR-{old.number:04d} once accepted (then set its `superseded-by`).",
        "",
    ]
    return "\n".join(lines)
