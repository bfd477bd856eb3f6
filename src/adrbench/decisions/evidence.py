"""Which runs stand as an ADR's evidence: per environment, the evidence run of each suite it names.

An ADR names its suites in its front matter (``evidence: [finetune_sts/full, speed_levers]``); it
is judged on each environment's evidence run of each of those suites (the newest run of the most
thorough profile, :func:`adrbench.results.store.latest_per_environment`), together:
``results.<scenario>.*`` resolve from the union of those runs (a scenario name two of them share
is an error, :func:`adrbench.decisions.facts.build_facts`), ``env.*`` and ``model.*`` from the run
of the first suite it names. A suite with no run on an environment is said so
(:class:`MissingEvidence`), never replaced by a run of another suite. ``adrbench check`` and
``adrbench report`` both select runs here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adrbench.results.record import RunRecord

__all__ = ["MissingEvidence", "adr_runs", "evidence_runs", "evidence_suites"]


def evidence_suites(evidence: Sequence[str]) -> tuple[str, ...]:
    """The suites an ADR's evidence entries come from, in the ADR's order.

    Args:
        evidence: The ADR's evidence entries: ``suite`` or ``suite/scenario``.
    """
    suites: list[str] = []
    for entry in evidence:
        suite = entry.partition("/")[0]
        if suite not in suites:
            suites.append(suite)
    return tuple(suites)


def evidence_runs(
    results_dir: Path, suites: Iterable[str], *, include_interrupted: bool = False
) -> tuple[RunRecord, ...]:
    """The evidence run of each of ``suites`` on each environment that has one.

    Sorted by suite, then by environment fingerprint (the reports' column order). Every run file
    is parsed: a corrupt one is an error, never passed over.

    Args:
        results_dir: The results directory (holding ``runs/``).
        suites: The suites wanted.
        include_interrupted: Count runs a signal stopped part-way too (never by default).
    """
    from adrbench.results.store import latest_per_environment

    return tuple(
        run
        for suite in sorted(set(suites))
        for run in latest_per_environment(
            results_dir, suite=suite, include_interrupted=include_interrupted
        )
    )


def adr_runs(
    evidence: Sequence[str], runs: Iterable[RunRecord], *, environment: str | None = None
) -> tuple[RunRecord, ...]:
    """The runs among ``runs`` that are evidence for an ADR: those of the suites it names, in
    the ADR's order of suites (then in ``runs``' order).

    Args:
        evidence: The ADR's evidence entries.
        runs: Candidate runs (e.g. from :func:`evidence_runs`).
        environment: Only runs of this environment fingerprint, if given.
    """
    candidates = [
        r for r in runs if environment is None or r.environment.fingerprint == environment
    ]
    return tuple(
        run for suite in evidence_suites(evidence) for run in candidates if run.suite == suite
    )


@dataclass(frozen=True, slots=True)
class MissingEvidence:
    """Suites an ADR names that have no run on an environment (or in the run given).

    Args:
        number: The ADR's number.
        title: Its title.
        suites: Its suites without a run there, in the ADR's order.
        environment: The environment's fingerprint.
        judged: Whether the ADR was still judged there, on the runs of its other suites.
        given_run: With ``check --results``: the run named, which is of another suite.
    """

    number: int
    title: str
    suites: tuple[str, ...]
    environment: str
    judged: bool = False
    given_run: str | None = None

    def line(self) -> str:
        """One sentence: which suite has no run where, and the command that adds one."""
        label = "suite" if len(self.suites) == 1 else "suites"
        names = ", ".join(self.suites)
        commands = " and ".join(f"`adrbench run bench/{s}.toml`" for s in self.suites)
        if self.given_run is not None:
            where = f"run {self.given_run} is not of {label} {names}"
            fix = f"pass --results a run of {label} {names}, or run {commands}"
        else:
            where = f"no run of {label} {names} on environment {self.environment}"
            fix = f"run {commands}"
        state = "judged on its other suites only" if self.judged else "not judged"
        return f"ADR-{self.number:04d} {self.title}: {state}; {where}: {fix}"
