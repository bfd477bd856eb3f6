"""Verdicts: what the facts say about each claim, revisit trigger and premise of an ADR.

Types first (shared by ``check``, ``render`` and tests); the evaluation that produces them lives
below. Unknown is its own outcome and is never shown as fine.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adrbench.decisions.adr import Adr, AdrError, Item, Problem, adr_paths, lint
from adrbench.decisions.evidence import MissingEvidence, adr_runs, evidence_runs, evidence_suites
from adrbench.decisions.expressions import ExpressionError, Missing, Value, caret_snippet, evaluate
from adrbench.decisions.facts import Facts, build_facts
from adrbench.errors import UserError
from adrbench.project import DeclaredValue, declared_facts
from adrbench.results.record import RunRecord
from adrbench.stats import Estimate

__all__ = [
    "AdrVerdicts",
    "EnvironmentVerdicts",
    "Judgement",
    "Kind",
    "Outcome",
    "Verdict",
    "judge",
    "judge_environments",
]


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
    # any kind: the deciding 95% interval straddles the threshold (measured, but not enough)
    INCONCLUSIVE = "inconclusive"
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
        computed: Compared sides that are calculations, by source text (e.g. the ratio in
            ``a / b >= 50``), so the number the verdict turned on can be shown.
        intervals: The uncertain quantities compared, by source text, with their 95% intervals
            (the interval that decided; for ``a > b`` also ``a - b``).
        resolve: For an inconclusive verdict, about how many repetitions would resolve it.
        gap: The gap (distance from the threshold) ``resolve`` was worked out for.
    """

    kind: Kind
    id: str
    text: str
    expression: str
    outcome: Outcome
    values: Mapping[str, object]
    reason: str | None = None
    computed: Mapping[str, float] = field(default_factory=dict)
    intervals: Mapping[str, Estimate] = field(default_factory=dict)
    resolve: int | None = None
    gap: float | None = None


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

    @property
    def inconclusive(self) -> bool:
        return any(v.outcome is Outcome.INCONCLUSIVE for v in self.verdicts)

    def of_kind(self, kind: Kind) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.kind is kind)


# --- evaluation ------------------------------------------------------------------------------

# item kind -> (outcome when the expression is true, outcome when false)
_OUTCOMES: Mapping[str, tuple[Outcome, Outcome]] = {
    "claim": (Outcome.HOLDS, Outcome.FAILS),
    "trigger": (Outcome.FIRED, Outcome.NOT_FIRED),
    "premise": (Outcome.HOLDS, Outcome.STALE),
}


def _problem(adr: Adr, item: Item, message: str, snippet: str | None = None) -> AdrError:
    return AdrError([Problem(adr.path, item.line, item.field, message, snippet)])


def judge_item(adr: Adr, item: Item, facts: Facts) -> Verdict:
    """Judge one claim, trigger or premise.

    Args:
        adr: The ADR it belongs to (for error messages).
        item: The claim, trigger or premise.
        facts: The namespace (see :func:`adrbench.decisions.facts.build_facts`).

    Raises:
        AdrError: a name that is not a fact, a type mismatch, or an expression that is not a
            condition (its result is not true/false), with file, line and caret.
    """
    try:
        result = evaluate(item.expression, facts.lookup, suggest=facts.nearest)
    except ExpressionError as error:
        raise _problem(
            adr, item, error.message, caret_snippet(error.source, error.start, error.end)
        ) from None
    values = {
        name: (None if isinstance(value, Missing) else value)
        for name, value in result.values.items()
    }
    if_true, if_false = _OUTCOMES[item.kind]
    # What a probe did explains its value; a missing probe's reason already says it.
    notes = [
        facts.probe_details[n]
        for n, v in result.values.items()
        if n in facts.probe_details and not isinstance(v, Missing)
    ]
    overridden = [n for n in result.values if n in facts.what_if]
    if overridden:
        notes.append("what-if: " + ", ".join(overridden))
    if result.inconclusive:
        return Verdict(
            Kind(item.kind),
            item.id,
            item.text,
            item.expression.source,
            Outcome.INCONCLUSIVE,
            values,
            "; ".join(notes) or None,
            dict(result.computed),
            dict(result.intervals),
            result.resolve,
            result.gap,
        )
    if result.value is None:
        reason = "; ".join([*result.unknown, *notes])
        return Verdict(
            Kind(item.kind),
            item.id,
            item.text,
            item.expression.source,
            Outcome.UNKNOWN,
            values,
            reason,
            dict(result.computed),
            dict(result.intervals),
        )
    if not isinstance(result.value, bool):
        raise _problem(
            adr,
            item,
            f"evaluates to {result.value!r}, not true or false; write a condition, e.g. "
            "'model.parameters >= 7B'",
            caret_snippet(item.expression.source, 0, len(item.expression.source)),
        )
    outcome = if_true if result.value else if_false
    return Verdict(
        Kind(item.kind),
        item.id,
        item.text,
        item.expression.source,
        outcome,
        values,
        "; ".join(notes) or None,
        dict(result.computed),
        dict(result.intervals),
    )


def judge_adr(adr: Adr, facts: Facts) -> AdrVerdicts:
    """Judge every claim, trigger and premise of one ADR (none: "no evidence", not an error).

    Args:
        adr: From :func:`adrbench.decisions.adr.load_adrs`.
        facts: The namespace.

    Raises:
        AdrError: every expression of the ADR that cannot be judged (see :func:`judge_item`).
    """
    verdicts: list[Verdict] = []
    problems: list[Problem] = []
    for item in adr.items:
        try:
            verdicts.append(judge_item(adr, item, facts))
        except AdrError as error:
            problems.extend(error.problems)
    if problems:
        raise AdrError(problems)
    return AdrVerdicts(
        number=adr.number,
        title=adr.title,
        path=str(adr.path),
        status=adr.status or "none",
        evidence=adr.evidence,
        verdicts=tuple(verdicts),
    )


def _evidence_suite(adrs: Sequence[Adr]) -> str | None:
    """The one suite every ADR's evidence names, if they agree on exactly one."""
    suites = {entry.split("/")[0] for adr in adrs for entry in adr.evidence}
    return suites.pop() if len(suites) == 1 else None


def select_run(
    results_dir: Path,
    *,
    run: str | None = None,
    suite: str | None = None,
    environment: str | None = None,
    include_interrupted: bool = False,
) -> RunRecord | None:
    """The run to judge against.

    ``run`` (a path, run id or "latest") wins. Otherwise: the evidence run of ``suite`` for this
    environment (its fingerprint; measured here when not given), i.e. the newest run of the most
    thorough profile (:func:`adrbench.results.store.evidence_run`, the same run the reports show),
    or None when there is none yet — then every ``results.*`` fact is unknown, never fine.

    Args:
        results_dir: The results directory.
        run: What ``--results`` named, if anything.
        suite: The evidence suite, when the ADRs agree on one.
        environment: This machine's environment fingerprint (default: captured now).
        include_interrupted: Let a run a signal stopped part-way be evidence (never by default).
    """
    from adrbench.results import store

    if run is not None:
        return store.resolve_run(run, results_dir, include_interrupted=include_interrupted)
    if environment is None:
        from adrbench.machine import this_environment

        environment = this_environment().fingerprint
    return store.evidence_run(
        results_dir, suite=suite, environment=environment, include_interrupted=include_interrupted
    )


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdicts of a ``check``, with what they were judged against.

    Args:
        run: The run the facts came from (None: no run yet for this environment); for ADRs
            naming several suites, the run of the first (``env.*`` and ``model.*`` come from it).
        facts: The namespace, what-if overrides included.
        verdicts: One per ADR judged on ``run``, by number.
        missing: The ADRs not judged on ``run`` because it is not of a suite they name.
        also: The runs of the ADRs' other suites on the same environment, whose scenarios join
            ``results.*``.
    """

    run: RunRecord | None
    facts: Facts
    verdicts: tuple[AdrVerdicts, ...]
    missing: tuple[MissingEvidence, ...] = ()
    also: tuple[RunRecord, ...] = ()

    @property
    def runs(self) -> tuple[RunRecord, ...]:
        """Every run judged on: ``run``, then ``also``."""
        return (self.run, *self.also) if self.run is not None else ()

    @property
    def needs_attention(self) -> bool:
        return any(v.needs_attention for v in self.verdicts)

    @property
    def inconclusive(self) -> bool:
        return any(v.inconclusive for v in self.verdicts)


def judge(
    adr_dir: Path,
    results_dir: Path,
    *,
    run: str | None = None,
    what_if: Mapping[str, str] | None = None,
    probes: bool = True,
    only: Sequence[Path] | None = None,
    environment: str | None = None,
    include_interrupted: bool = False,
) -> Judgement:
    """Lint every ADR, pick one run, build the facts once and judge each ADR it is evidence for.

    An ADR naming suites none of which is the run's is not judged on it (it is listed in
    :attr:`Judgement.missing`); an ADR naming no suite is judged on any run. Without a run (none
    yet for this environment) every ADR is judged, its ``results.*`` facts unknown.

    Args:
        adr_dir: The ADR directory (``adr``).
        results_dir: The results directory (``results``).
        run: A run id, path or "latest" (``--results``); default: see :func:`select_run`.
        what_if: Facts to override, NAME -> VALUE text.
        probes: Run the premise probes.
        only: Judge just these ADR files (all are still linted, for cross-references).
        environment: This machine's fingerprint, to pick its latest run (default: measured).
        include_interrupted: Let an interrupted run be evidence (see :func:`select_run`).

    Raises:
        AdrError: lint problems, or expressions that cannot be judged, all of them.
        UserError: a bad ``run`` or ``what_if``.
    """
    adrs = _linted(adr_dir, only)
    chosen = select_run(
        results_dir,
        run=run,
        suite=_evidence_suite(adrs),
        environment=environment,
        include_interrupted=include_interrupted,
    )
    facts = build_facts(
        chosen, what_if=what_if or {}, probes=probes, declared=declared_facts(adr_dir)
    )
    if chosen is None:
        return Judgement(chosen, facts, _judge_adrs(adrs, facts))
    judged = [a for a in adrs if _is_evidence(chosen, a)]
    missing = tuple(
        MissingEvidence(
            a.number,
            a.title,
            evidence_suites(a.evidence),
            chosen.environment.fingerprint,
            given_run=chosen.run_id,
        )
        for a in adrs
        if not _is_evidence(chosen, a)
    )
    return Judgement(chosen, facts, _judge_adrs(judged, facts), missing)


def _is_evidence(run: RunRecord, adr: Adr) -> bool:
    suites = evidence_suites(adr.evidence)
    return not suites or run.suite in suites


def _linted(adr_dir: Path, only: Sequence[Path] | None) -> list[Adr]:
    """Every ADR linted (problems raised, all of them), then narrowed to ``only``."""
    paths = adr_paths(adr_dir)
    known = {q.resolve() for q in paths}
    extra = [p for p in (only or ()) if p.resolve() not in known]
    result = lint([*paths, *extra])
    if result.problems:
        raise AdrError(result.problems)
    adrs = list(result.adrs)
    if only:
        wanted = {p.resolve() for p in only}
        adrs = [a for a in adrs if a.path.resolve() in wanted]
    return adrs


def _judge_adrs(adrs: Sequence[Adr], facts: Facts) -> tuple[AdrVerdicts, ...]:
    verdicts: list[AdrVerdicts] = []
    problems: list[Problem] = []
    for adr in adrs:
        try:
            verdicts.append(judge_adr(adr, facts))
        except AdrError as error:
            problems.extend(error.problems)
    if problems:
        raise AdrError(problems)
    return tuple(verdicts)


@dataclass(frozen=True, slots=True)
class EnvironmentVerdicts:
    """One environment's judgements: one per evidence run, each of the ADRs it is evidence for.

    Args:
        fingerprint: The environment's fingerprint.
        judgements: One per run judged on, in suite order (an ADR naming no suite: on the
            environment's evidence run of any suite).
        missing: ADRs naming a suite with no run on this environment, in ADR order.
    """

    fingerprint: str
    judgements: tuple[Judgement, ...]
    missing: tuple[MissingEvidence, ...]

    @property
    def needs_attention(self) -> bool:
        return any(j.needs_attention for j in self.judgements)

    @property
    def inconclusive(self) -> bool:
        return any(j.inconclusive for j in self.judgements)


def judge_environments(
    adr_dir: Path,
    results_dir: Path,
    *,
    what_if: Mapping[str, str] | None = None,
    probes: bool = True,
    only: Sequence[Path] | None = None,
    environment: str | None = None,
    include_interrupted: bool = False,
) -> list[EnvironmentVerdicts]:
    """Every environment with evidence for the ADRs, each ADR judged on its own suites' runs.

    An ADR is judged on an environment's evidence run of each suite it names (the newest run of
    its most thorough profile, :func:`adrbench.decisions.evidence.evidence_runs`, as the report
    judges it), each run on its own; a suite without a run there is listed in
    :attr:`EnvironmentVerdicts.missing`, never replaced by a run of another suite. An ADR naming
    no suite is judged on the environment's evidence run of any suite. Environments are those with
    a run of a suite the ADRs name (of any suite, when an ADR names none), sorted by fingerprint;
    the premise probes run once (they describe this machine). Empty when there is none.

    Args:
        adr_dir: The ADR directory.
        results_dir: The results directory.
        what_if: Facts to override in every environment, NAME -> VALUE text.
        probes: Run the premise probes.
        only: Judge just these ADR files.
        environment: Only the environment whose fingerprint starts with this.
        include_interrupted: Let runs a signal stopped part-way be evidence (never by default).

    Raises:
        AdrError: lint problems, or expressions that cannot be judged, all of them.
        UserError: a bad ``what_if``; a corrupt results file.
    """
    from adrbench.results.store import latest_per_environment

    adrs = _linted(adr_dir, only)
    suites = {s for a in adrs for s in evidence_suites(a.evidence)}
    runs = list(evidence_runs(results_dir, suites, include_interrupted=include_interrupted))
    any_suite: dict[str, RunRecord] = {}
    if any(not evidence_suites(a.evidence) for a in adrs):
        any_suite = {
            r.environment.fingerprint: r
            for r in latest_per_environment(results_dir, include_interrupted=include_interrupted)
        }
    fingerprints = sorted({r.environment.fingerprint for r in runs} | set(any_suite))
    if environment is not None:
        fingerprints = [f for f in fingerprints if f.startswith(environment)]
    plans = [_plan(f, runs, any_suite.get(f), adrs) for f in fingerprints]
    groups = [g for p in plans for g in p.groups]
    facts = _facts_per_run_set(groups, what_if or {}, probes, declared_facts(adr_dir))
    return [
        EnvironmentVerdicts(
            p.fingerprint,
            tuple(
                Judgement(
                    group.runs[0],
                    facts[group.key],
                    _judge_adrs(group.adrs, facts[group.key]),
                    also=group.runs[1:],
                )
                for group in p.groups
            ),
            p.missing,
        )
        for p in plans
    ]


@dataclass(frozen=True, slots=True)
class _Group:
    """ADRs judged on the same runs (one per suite they name, the first suite's first)."""

    runs: tuple[RunRecord, ...]
    adrs: tuple[Adr, ...]

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(r.run_id for r in self.runs)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one environment judges: the ADRs grouped by the runs they are judged on, the gaps."""

    fingerprint: str
    groups: tuple[_Group, ...]
    missing: tuple[MissingEvidence, ...]


def _plan(
    fingerprint: str, runs: Sequence[RunRecord], fallback: RunRecord | None, adrs: Sequence[Adr]
) -> _Plan:
    """Which runs of ``fingerprint`` each ADR is judged on (``fallback``: its evidence run of any
    suite, for ADRs that name none), grouped by run set in the order of their first run."""
    here = [r for r in runs if r.environment.fingerprint == fingerprint]
    if fallback is not None and all(r.run_id != fallback.run_id for r in here):
        here.append(fallback)
    judged_on: dict[tuple[str, ...], tuple[tuple[RunRecord, ...], list[Adr]]] = {}
    missing: list[MissingEvidence] = []
    for adr in adrs:
        suites = evidence_suites(adr.evidence)
        chosen = adr_runs(adr.evidence, here) if suites or fallback is None else (fallback,)
        absent = tuple(s for s in suites if all(r.suite != s for r in chosen))
        if absent:
            missing.append(
                MissingEvidence(adr.number, adr.title, absent, fingerprint, judged=bool(chosen))
            )
        if chosen:
            key = tuple(r.run_id for r in chosen)
            judged_on.setdefault(key, (chosen, []))[1].append(adr)
    order = {r.run_id: index for index, r in enumerate(here)}
    groups = sorted(
        (_Group(chosen, tuple(on)) for chosen, on in judged_on.values()),
        key=lambda g: [order[i] for i in g.key],
    )
    return _Plan(fingerprint, tuple(groups), tuple(missing))


def _facts_per_run_set(
    groups: Sequence[_Group],
    what_if: Mapping[str, str],
    probes: bool,
    declared: Mapping[str, DeclaredValue],
) -> dict[tuple[str, ...], Facts]:
    """Each run set's facts, by run ids; the premise probes run once, with the first (this
    machine).

    Raises:
        UserError: two runs of a set share a scenario name (naming the ADRs and both suites).
    """
    built: dict[tuple[str, ...], Facts] = {}
    probe_values: dict[str, Value | Missing] | None = None
    probe_details: Mapping[str, str] = {}
    for group in groups:
        if group.key in built:
            continue
        first, *also = group.runs
        try:
            if probe_values is None:
                base = build_facts(first, also=also, probes=probes, declared=declared)
                probe_values = {k: v for k, v in base.values.items() if k.startswith("probes.")}
                probe_details = base.probe_details
            else:
                plain = build_facts(first, also=also, probes=False, declared=declared)
                base = Facts(
                    values={**plain.values, **probe_values},
                    run_id=plain.run_id,
                    probe_details=probe_details,
                )
        except UserError as error:
            names = ", ".join(f"ADR-{a.number:04d} ({a.path})" for a in group.adrs)
            raise UserError(f"{names}: {error}") from None
        built[group.key] = base.with_what_if(what_if) if what_if else base
    return built


def judge_all(
    adr_dir: Path,
    results_dir: Path,
    *,
    run: str | None = None,
    what_if: Mapping[str, str] | None = None,
    probes: bool = True,
    only: Sequence[Path] | None = None,
    environment: str | None = None,
    include_interrupted: bool = False,
) -> list[AdrVerdicts]:
    """The verdicts of :func:`judge` (same arguments), for callers that need only those."""
    return list(
        judge(
            adr_dir,
            results_dir,
            run=run,
            what_if=what_if,
            probes=probes,
            only=only,
            environment=environment,
            include_interrupted=include_interrupted,
        ).verdicts
    )
