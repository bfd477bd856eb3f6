"""``adrbench check``: judge each ADR's claims, revisit triggers and premises against the facts.

Examples::

    adrbench check                                   # every ADR, on every environment's evidence
    adrbench check --env this                        # only this machine's evidence
    adrbench check --env 0452bd --fail-on-stale      # one environment; stale evidence exits 1
    adrbench check 2 --what-if model.parameters=7B   # would a 7B model reopen ADR-0002?
    adrbench check --results 20261128T120000Z-finetune_sts-quick-0001 --format json

It lints the ADRs first, then judges each environment that has evidence in ``results/runs/``: each
ADR on that environment's evidence run of each suite its ``evidence`` names (the newest run of the
most thorough profile, chosen by :mod:`adrbench.decisions.evidence` as for the report), and says
whether that evidence is stale (:mod:`adrbench.decisions.staleness`). An ADR whose suites have no
run on an environment is not judged there: one line says so and names the run to make, and it never
counts as firing. With ``--results RUN`` only the ADRs naming RUN's suite (or none) are judged. Exit
status: 0 nothing to revisit; 1 a trigger fired, a claim failed or a premise went stale on any
environment (or, with ``--fail-on-stale``, some evidence is stale; with ``--strict``, a verdict is
inconclusive); 2 bad input (a broken ADR, an unknown fact, a corrupt results file); 3 no evidence at
all (no run anywhere of a suite the judged ADRs name, or none on the environment ``--env`` names).
Unknown verdicts (a skipped scenario, a missing fact) are printed as UNKNOWN with their reason,
inconclusive ones (the 95% interval straddles the threshold) as INCONCLUSIVE with the interval and
about how many repetitions would resolve them; neither fails a plain check, and neither is ever
shown as fine.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from adrbench.commands import (
    add_adr_options,
    add_include_interrupted,
    add_no_probes,
    add_results_dir,
    ensure_adr_dir,
    ensure_runs,
)
from adrbench.decisions.adr import resolve_adr_args
from adrbench.decisions.evidence import MissingEvidence
from adrbench.decisions.facts import Facts
from adrbench.decisions.staleness import Staleness
from adrbench.decisions.verdicts import (
    AdrVerdicts,
    EnvironmentVerdicts,
    Judgement,
    Kind,
    Outcome,
    Verdict,
    judge,
    judge_environments,
)
from adrbench.errors import UserError
from adrbench.reports.render import format_value, uncertainty_notes
from adrbench.stats import Estimate
from adrbench.units import format_count

__all__ = [
    "EXIT_NO_EVIDENCE",
    "add_arguments",
    "format_environments",
    "format_json",
    "format_markdown",
    "format_table",
    "run",
]

_SHOWN = {
    Outcome.FIRED: "FIRED",
    Outcome.FAILS: "FAILS",
    Outcome.STALE: "STALE",
    Outcome.UNKNOWN: "UNKNOWN",
    Outcome.INCONCLUSIVE: "INCONCLUSIVE",
    Outcome.HOLDS: "holds",
    Outcome.NOT_FIRED: "not fired",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options.

    Args:
        parser: The subcommand's parser.
    """
    add_adr_options(parser)
    add_results_dir(parser)
    parser.add_argument(
        "--results",
        metavar="RUN",
        help="judge only this run: run id, results file or 'latest' (default: the evidence run "
        "of every environment)",
    )
    parser.add_argument(
        "--env",
        metavar="FINGERPRINT|this",
        help="judge only this environment (a fingerprint or its prefix; 'this': this machine)",
    )
    parser.add_argument(
        "--fail-on-stale",
        action="store_true",
        help="exit 1 when judged evidence is stale (suite, training stack or measuring code "
        "changed since the run)",
    )
    parser.add_argument(
        "--what-if",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a fact, e.g. model.parameters=7B or env.cuda_available=true (repeatable)",
    )
    parser.add_argument(
        "--format", choices=("table", "json", "markdown"), default="table", help="output format"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also exit 1 when a verdict is inconclusive (its 95%% interval straddles the "
        "threshold)",
    )
    add_no_probes(parser)
    add_include_interrupted(parser)
    parser.epilog = (
        "exit status: 0 nothing to revisit; 1 a trigger fired, a claim failed or a premise went "
        "stale (or stale evidence with --fail-on-stale); 2 bad input; 3 no evidence anywhere "
        "(no run in RESULTS_DIR/runs of a suite the ADRs name, or none for --env)"
    )


def _parse_what_if(items: Sequence[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UserError(
                f"--what-if {item!r}: expected NAME=VALUE, e.g. --what-if model.parameters=7B"
            )
        parsed[name.strip()] = value.strip()
    return parsed


def _value(name: str, value: object, facts: Facts) -> str:
    if value is None:
        return f"{name} = missing"
    text = f"{name} = {format_value(name, value)}"
    return f"{text} (what-if)" if name in facts.what_if else text


def _values(verdict: Verdict, facts: Facts) -> str:
    shown = [_value(n, v, facts) for n, v in verdict.values.items()]
    computed = {t: v for t, v in verdict.computed.items() if t not in verdict.intervals}
    if computed:
        # The calculated side of a comparison (e.g. the ratio), next to the condition's column.
        numbers = [format_count(v) if abs(v) >= 1e4 else f"{v:.4g}" for v in computed.values()]
        shown.append(f"computed {' and '.join(numbers)}")
    return ", ".join(shown + uncertainty_notes(verdict))


def _headline(adr: AdrVerdicts) -> str:
    head = f"ADR-{adr.number:04d} {adr.title} [{adr.status}]"
    if not adr.verdicts:
        return f"{head}: no evidence (no claims, revisit triggers or premises)"
    attention = [v for v in adr.verdicts if v.outcome.needs_attention]
    unknown = [v for v in adr.verdicts if v.outcome is Outcome.UNKNOWN]
    unsure = [v for v in adr.verdicts if v.outcome is Outcome.INCONCLUSIVE]
    if attention:
        what = ", ".join(f"{v.kind.value} {v.id} {v.outcome.value}" for v in attention)
        return f"{head}: REVISIT ({what})"
    if unknown or unsure:
        parts = [f"{len(unsure)} inconclusive"] if unsure else []
        parts += [f"{len(unknown)} unknown"] if unknown else []
        return f"{head}: UNCONFIRMED ({', '.join(parts)})"
    return f"{head}: all claims hold, no trigger fired"


def _source(judgement: Judgement) -> str:
    run = judgement.run
    if run is None:
        where = "no run for this environment yet (results.* and model.* are unknown)"
    elif not judgement.also:
        where = (
            f"run {run.run_id} (suite {run.suite}, profile {run.profile}, "
            f"environment {run.environment.fingerprint}, {run.environment.device_kind})"
        )
    else:
        listed = " and ".join(
            f"run {r.run_id} (suite {r.suite}, profile {r.profile})" for r in judgement.runs
        )
        where = (
            f"{listed} together (environment {run.environment.fingerprint}, "
            f"{run.environment.device_kind}; env.* and model.* from the first)"
        )
    lines = [f"Judged against {where}."]
    if judgement.facts.what_if:
        overrides = ", ".join(
            f"{n} = {format_value(n, v)}" for n, v in sorted(judgement.facts.what_if.items())
        )
        lines.append(f"What-if: {overrides}.")
    return "\n".join(lines)


def _summary(judgement: Judgement) -> str:
    counts = {o: 0 for o in Outcome}
    for adr in judgement.verdicts:
        for v in adr.verdicts:
            counts[v.outcome] += 1
    revisit = [f"ADR-{a.number:04d}" for a in judgement.verdicts if a.needs_attention]
    parts = [
        f"{counts[Outcome.FIRED]} trigger(s) fired",
        f"{counts[Outcome.FAILS]} claim(s) failed",
        f"{counts[Outcome.STALE]} premise(s) stale",
        f"{counts[Outcome.INCONCLUSIVE]} inconclusive",
        f"{counts[Outcome.UNKNOWN]} unknown",
    ]
    verdict = f"revisit {', '.join(revisit)}" if revisit else "nothing to revisit"
    return f"{len(judgement.verdicts)} ADR(s): {'; '.join(parts)} — {verdict}."


def _rows(adr: AdrVerdicts, facts: Facts) -> list[list[str]]:
    rows = []
    for kind in (Kind.CLAIM, Kind.TRIGGER, Kind.PREMISE):
        for v in adr.of_kind(kind):
            values = _values(v, facts)
            # Overridden values already say "(what-if)"; keep the rest of the reason.
            reason = "; ".join(
                part for part in (v.reason or "").split("; ") if not part.startswith("what-if: ")
            )
            if reason:
                label = "why" if v.outcome is Outcome.UNKNOWN else "note"
                values = f"{values}; {label}: {reason}" if values else f"{label}: {reason}"
            rows.append([_SHOWN[v.outcome], v.kind.value, v.id, v.expression, values])
    return rows


_HEADERS = ["verdict", "kind", "id", "condition", "values"]


def format_table(judgement: Judgement) -> str:
    """Plain-text report: one block per ADR, then a summary line.

    Args:
        judgement: From :func:`adrbench.decisions.verdicts.judge`.
    """
    blocks = [_source(judgement)]
    for adr in judgement.verdicts:
        block = _headline(adr)
        if adr.verdicts:
            table = tabulate(_rows(adr, judgement.facts), headers=_HEADERS, tablefmt="simple")
            block += "\n" + "\n".join(f"  {line}" for line in table.splitlines())
        blocks.append(block)
    if judgement.missing:
        blocks.append(_missing_lines(judgement.missing))
    blocks.append(_summary(judgement))
    return "\n\n".join(blocks) + "\n"


def format_markdown(judgement: Judgement) -> str:
    """GitHub Markdown: a section per ADR with a verdict table.

    Args:
        judgement: From :func:`adrbench.decisions.verdicts.judge`.
    """
    blocks = [_source(judgement)]
    for adr in judgement.verdicts:
        block = f"### {_headline(adr)}"
        if adr.verdicts:
            rows = [
                [cell.replace("|", "\\|") for cell in row[:3]]
                + [f"`{row[3]}`", row[4].replace("|", "\\|")]
                for row in _rows(adr, judgement.facts)
            ]
            block += "\n\n" + tabulate(rows, headers=_HEADERS, tablefmt="github")
        blocks.append(block)
    if judgement.missing:
        blocks.append(_missing_lines(judgement.missing))
    blocks.append(f"**{_summary(judgement)}**")
    return "\n\n".join(blocks) + "\n"


def format_json(judgement: Judgement) -> str:
    """Machine-readable: the run, the what-if overrides and every verdict with its values.

    Args:
        judgement: From :func:`adrbench.decisions.verdicts.judge`.
    """
    return json.dumps(_json_data(judgement), indent=2, sort_keys=True) + "\n"


def _json_data(judgement: Judgement) -> dict[str, object]:
    run = judgement.run
    return {
        "run": None
        if run is None
        else {
            "run_id": run.run_id,
            "suite": run.suite,
            "profile": run.profile,
            "environment": run.environment.fingerprint,
        },
        "also_runs": [
            {"run_id": r.run_id, "suite": r.suite, "profile": r.profile} for r in judgement.also
        ],
        "what_if": dict(judgement.facts.what_if),
        "needs_attention": judgement.needs_attention,
        "adrs": [
            {
                "number": adr.number,
                "title": adr.title,
                "path": adr.path,
                "status": adr.status,
                "evidence": list(adr.evidence),
                "needs_attention": adr.needs_attention,
                "verdicts": [
                    {
                        "kind": v.kind.value,
                        "id": v.id,
                        "text": v.text,
                        "expression": v.expression,
                        "outcome": v.outcome.value,
                        "values": {n: _json_value(x) for n, x in v.values.items()},
                        "reason": v.reason,
                        "computed": dict(v.computed),
                        "intervals": {t: _json_value(e) for t, e in v.intervals.items()},
                        "repetitions_to_resolve": v.resolve,
                    }
                    for v in adr.verdicts
                ],
            }
            for adr in judgement.verdicts
        ],
        "not_judged": [_json_missing(m) for m in judgement.missing],
    }


def _json_value(value: object) -> object:
    if isinstance(value, Estimate):
        return {
            "mean": value.mean,
            "ci95": [value.low, value.high],
            "n": value.n,
            "method": value.method,
        }
    return value


_FORMATTERS = {"table": format_table, "markdown": format_markdown, "json": format_json}


EXIT_NO_EVIDENCE = 3


@dataclass(frozen=True, slots=True)
class RunJudgement:
    """One judgement (of the ADRs whose evidence is its runs) and whether each run is stale."""

    judgement: Judgement
    staleness: tuple[Staleness, ...]  # one per run of the judgement, in order

    @property
    def stale(self) -> bool:
        return any(s.stale for s in self.staleness)

    def evidence(self) -> str:
        """``Evidence: <staleness>``, a line per run (naming its suite) when there are several."""
        if len(self.staleness) == 1:
            return f"Evidence: {self.staleness[0].summary()}"
        return "\n".join(
            f"Evidence (suite {run.suite}): {staleness.summary()}"
            for run, staleness in zip(self.judgement.runs, self.staleness, strict=True)
        )


@dataclass(frozen=True, slots=True)
class EnvironmentJudgement:
    """One environment's judgements, one per evidence run, and the ADRs left unjudged there."""

    verdicts: EnvironmentVerdicts
    runs: tuple[RunJudgement, ...]
    here: bool

    @property
    def needs_attention(self) -> bool:
        return self.verdicts.needs_attention

    @property
    def stale(self) -> bool:
        return any(r.stale for r in self.runs)


def _environment_head(item: EnvironmentJudgement) -> str:
    run = item.runs[0].judgement.run
    assert run is not None  # judge_environments judges runs only
    env = run.environment
    where = " (this machine)" if item.here else ""
    return f"Environment {env.fingerprint}{where}: {env.device_kind}, {env.device_name}"


def _missing_lines(missing: Sequence[MissingEvidence]) -> str:
    return "\n".join(m.line() + "." for m in missing)


def format_environments(items: Sequence[EnvironmentJudgement], fmt: str, this: str) -> str:
    """Every environment's verdicts in ``fmt`` (table | markdown | json), then a closing line.

    Args:
        items: One per environment with evidence.
        fmt: The output format.
        this: This machine's environment fingerprint.
    """
    closing = _closing(items, this)
    if fmt == "json":
        data = {
            "this_environment": this,
            "this_environment_has_evidence": any(i.here for i in items),
            "needs_attention": any(i.needs_attention for i in items),
            "environments": [
                {
                    **_json_data(r.judgement),
                    "this_machine": i.here,
                    "stale": r.stale,
                    "stale_reasons": [x for st in r.staleness for x in st.reasons],
                    "stale_notes": [x for st in r.staleness for x in st.notes],
                }
                for i in items
                for r in i.runs
            ],
            "not_judged": [_json_missing(m) for i in items for m in i.verdicts.missing],
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    blocks = []
    for item in items:
        head = _environment_head(item)
        head = f"## {head}\n" if fmt == "markdown" else head
        parts = [f"{r.evidence()}\n\n{_FORMATTERS[fmt](r.judgement)}" for r in item.runs]
        if item.verdicts.missing:
            parts.append(_missing_lines(item.verdicts.missing) + "\n")
        blocks.append(head + "\n" + "\n".join(parts))
    return "\n".join(blocks) + "\n" + closing + "\n"


def _json_missing(missing: MissingEvidence) -> dict[str, object]:
    return {
        "number": missing.number,
        "title": missing.title,
        "suites": list(missing.suites),
        "environment": missing.environment,
        "judged": missing.judged,
        "run": missing.given_run,
        "message": missing.line(),
    }


def _closing(items: Sequence[EnvironmentJudgement], this: str) -> str:
    revisit = [
        f"ADR-{number:04d} on {i.verdicts.fingerprint}"
        for i in items
        for number in sorted(
            {a.number for r in i.runs for a in r.judgement.verdicts if a.needs_attention}
        )
    ]
    stale = [i.verdicts.fingerprint for i in items if i.stale]
    unjudged = [
        f"ADR-{m.number:04d} on {m.environment}"
        for i in items
        for m in i.verdicts.missing
        if not m.judged
    ]
    lines = [
        f"{len(items)} environment(s) judged; "
        + (f"revisit {', '.join(revisit)}" if revisit else "nothing to revisit")
        + (f"; stale evidence: {', '.join(stale)}" if stale else "")
        + (f"; not judged (no run of their suites): {', '.join(unjudged)}" if unjudged else "")
        + "."
    ]
    if not any(i.here for i in items):
        lines.append(
            f"This machine ({this}) has no evidence of its own: run `adrbench run "
            "bench/finetune_sts.toml` to add it."
        )
    return "\n".join(lines)


def _no_evidence(
    args: argparse.Namespace, this: str, wanted: str | None, only: Sequence[Path] | None
) -> str:
    from adrbench.decisions.adr import adr_paths, lint
    from adrbench.decisions.evidence import evidence_runs, evidence_suites
    from adrbench.results.store import iter_runs, latest_per_environment

    runs_dir = args.results_dir / "runs"
    adrs = lint(list(only) if only else adr_paths(args.adr_dir)).adrs  # judged: they lint clean
    suites = sorted({s for a in adrs for s in evidence_suites(a.evidence)})
    every_suite = any(not evidence_suites(a.evidence) for a in adrs)
    if wanted is None:
        if not every_suite and next(iter_runs(args.results_dir), None) is not None:
            label = "suite" if len(suites) == 1 else "suites"
            commands = " and ".join(f"`adrbench run bench/{s}.toml`" for s in suites)
            return (
                f"No evidence anywhere: {runs_dir} holds no run of {label} {', '.join(suites)}, "
                f"so no ADR judged here can be judged. Run {commands} here, or `adrbench import "
                "FILE` a run made elsewhere."
            )
        return (
            f"No evidence anywhere: {runs_dir} holds no run, so no ADR can be judged. Run "
            "`adrbench run bench/finetune_sts.toml` here, or `adrbench import FILE` a run made "
            "elsewhere."
        )
    interrupted = args.include_interrupted
    runs = (
        latest_per_environment(args.results_dir, include_interrupted=interrupted)
        if every_suite
        else evidence_runs(args.results_dir, suites, include_interrupted=interrupted)
    )
    others = sorted({r.environment.fingerprint for r in runs})
    label = f"this machine ({this})" if args.env == "this" else f"environment {wanted!r}"
    known = ", ".join(others) if others else "none"
    return f"No evidence for {label} in {runs_dir}; environments with evidence: {known}."


def run(args: argparse.Namespace) -> int:
    """Lint, judge and print; 1 when any ADR needs revisiting, 3 when there is no evidence.

    Args:
        args: Parsed options (see :func:`add_arguments`).
    """
    ensure_adr_dir(args.adr_dir)
    # A results folder that is not there is bad input (exit 2); one without runs is "no evidence
    # anywhere" when every environment is judged (exit 3), bad input for --results latest.
    if args.results == "latest" or (args.results is None and not args.results_dir.is_dir()):
        ensure_runs(args.results_dir)
    only = resolve_adr_args(args.adr_dir, args.adrs) if args.adrs else None
    if args.results is None:
        return _run_environments(args, only)
    judgement = judge(
        args.adr_dir,
        args.results_dir,
        run=args.results,
        what_if=_parse_what_if(args.what_if),
        probes=args.probes,
        only=only,
        include_interrupted=args.include_interrupted,
    )
    print(_FORMATTERS[args.format](judgement), end="")
    if judgement.needs_attention:
        return 1
    return 1 if args.strict and judgement.inconclusive else 0


def _run_environments(args: argparse.Namespace, only: Sequence[Path] | None) -> int:
    from adrbench.decisions.staleness import judge_staleness
    from adrbench.engine.environment import repository_root
    from adrbench.machine import this_environment

    this = this_environment().fingerprint
    wanted = this if args.env == "this" else args.env
    environments = judge_environments(
        args.adr_dir,
        args.results_dir,
        what_if=_parse_what_if(args.what_if),
        probes=args.probes,
        only=only,
        environment=wanted,
        include_interrupted=args.include_interrupted,
    )
    if not environments:
        print(_no_evidence(args, this, wanted, only))
        return EXIT_NO_EVIDENCE
    root = repository_root(args.adr_dir.resolve().parent)
    items = []
    for verdicts in environments:
        runs = []
        for judgement in verdicts.judgements:
            assert judgement.run is not None  # judge_environments judges runs only
            staleness = tuple(
                judge_staleness(run, root=root, this_environment=this) for run in judgement.runs
            )
            runs.append(RunJudgement(judgement, staleness))
        items.append(EnvironmentJudgement(verdicts, tuple(runs), verdicts.fingerprint == this))
    print(format_environments(items, args.format, this), end="")
    if any(i.needs_attention for i in items):
        return 1
    if args.fail_on_stale and any(i.stale for i in items):
        return 1
    return 1 if args.strict and any(i.verdicts.inconclusive for i in items) else 0
