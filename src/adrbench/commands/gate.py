"""``adrbench gate``: fail a change that makes training slower, hungrier or less accurate.

Two modes, one set of rules (``[tool.adrbench.gate]``), one table of every comparison and every
failure together:

* **relative** (``--against REF``): check REF out into a temporary worktree and run REF's code and
  the working tree's on the working tree's suite, interleaved, ``--pairs`` processes a side, in
  this job (:mod:`adrbench.gate.relative`). Machine drift cancels; this is what CI uses.
* **committed baseline** (default): compare the current run with the committed baseline of its
  environment (``results/baselines/``); for a dedicated machine whose state is stable. The output
  says when the baseline comes from another boot.

Exit 0 pass, 1 regression, 2 bad input (missing baseline, another machine's baseline without
``--force``, an unknown REF, a REF that cannot run the suite, corrupt file).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

from adrbench.commands import add_include_interrupted
from adrbench.engine.suite import load_suite
from adrbench.errors import ResultsError
from adrbench.gate.baseline import find_baseline, list_baselines, load_baseline
from adrbench.gate.relative import (
    BASELINE_REF,
    Side,
    checkout,
    measure_pairs,
    resolve_ref,
    subprocess_runner,
)
from adrbench.gate.rules import (
    GateConfig,
    GateConfigError,
    GateReport,
    Row,
    evaluate,
    evaluate_paired,
    for_relative,
    load_config,
)
from adrbench.results.record import RunRecord
from adrbench.results.store import latest_run, resolve_run, runs_dir

_RESULTS_HELP = "results directory (default: results/ in the project root)"

__all__ = ["add_arguments", "render_json", "render_markdown", "render_table", "run"]

_HEADERS = (
    "scenario",
    "metric",
    "baseline",
    "current",
    "change",
    "threshold",
    "p-value",
    "verdict",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options.

    Args:
        parser: The subcommand's parser.
    """
    parser.add_argument(
        "--baseline",
        metavar="RUN|NAME",
        help="a baseline name (<environment>/<suite>-<profile>, see `adrbench baseline show`), "
        "a run id or a results file (default: the committed baseline of the current run's "
        "environment, suite and profile)",
    )
    parser.add_argument(
        "--current",
        metavar="RUN|DIR",
        help="run id, results file, or a results directory whose newest run is taken (default: "
        "the newest run in --results-dir)",
    )
    parser.add_argument("--results-dir", type=Path, default=None, help=_RESULTS_HELP)
    parser.add_argument(
        "--format",
        choices=("table", "markdown", "json"),
        default="table",
        help="how the verdict table is printed (markdown: for a CI job summary or a PR comment)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="file with [tool.adrbench.gate] (default: pyproject.toml in the project root; "
        "built-in rules when it has none)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="compare even when the baseline comes from another environment, suite or profile",
    )
    add_include_interrupted(parser)
    relative = parser.add_argument_group(
        "relative mode", "measure REF and the working tree here, interleaved (what CI uses)"
    )
    relative.add_argument(
        "--against",
        metavar="REF",
        help=f"a commit, branch or tag to measure beside the working tree, or {BASELINE_REF}: "
        "the commit the committed baseline of --suite/--profile was measured at",
    )
    relative.add_argument(
        "--suite",
        type=Path,
        default=Path("bench/finetune_sts.toml"),
        help="the suite both sides run, from the working tree (default: %(default)s)",
    )
    relative.add_argument("--profile", default="quick", help="its profile (default: %(default)s)")
    relative.add_argument(
        "--pairs",
        type=int,
        default=2,
        help="processes a side, run ref/cur, cur/ref, ... (at least 2; default: %(default)s)",
    )
    relative.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only this scenario"
    )
    relative.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario field on both sides (as adrbench run --set)",
    )
    relative.add_argument(
        "--current-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override on the working tree's side only, e.g. extra_step_work=0.15 to check the "
        "gate catches an injected regression",
    )
    relative.add_argument(
        "--data-dir", type=Path, default=None, help="STS-B folder (else $ADRBENCH_STSB_DIR)"
    )
    relative.add_argument(
        "--keep-runs",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep each side's runs under DIR (default: a temporary folder, removed)",
    )


def _cells(row: Row) -> list[str]:
    p = "—" if row.p_value is None else ("<0.0001" if row.p_value < 1e-4 else f"{row.p_value:.4f}")
    return [
        row.scenario,
        row.metric,
        row.baseline,
        row.current,
        row.change,
        row.threshold,
        p,
        row.verdict.value,
    ]


def _summary(report: GateReport) -> str:
    compared = len(report.rows)
    if report.passed:
        return f"PASS: {compared} comparisons, no regression"
    return f"FAIL: {len(report.failures)} of {compared} comparisons failed"


def _notes(report: GateReport) -> list[str]:
    rows = [r.message for r in report.rows if r.message is not None and not r.verdict.fails]
    return [*report.notes, *rows]


def render_table(report: GateReport) -> str:
    """Plain-text report for a terminal or CI log.

    Args:
        report: What the gate found.
    """
    forced = " (forced across environments)" if report.forced else ""
    runs = "runs" if report.pairs > 1 else "run"
    lines = [
        f"baseline: {report.baseline_source} ({runs} {report.baseline_run})",
        f"current:  {runs} {report.current_run} on environment {report.environment!r}{forced}",
        "rules:",
        *(f"  - {rule}" for rule in report.rules),
        "",
        tabulate([_cells(r) for r in report.rows], headers=_HEADERS, tablefmt="simple"),
        "",
        _summary(report),
    ]
    lines += [f"  - {r.message}" for r in report.failures]
    notes = _notes(report)
    if notes:
        lines += ["notes:", *(f"  - {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def render_markdown(report: GateReport) -> str:
    """GitHub-flavoured Markdown for a CI job summary.

    Args:
        report: What the gate found.
    """
    mark = "✅" if report.passed else "❌"
    forced = " — **forced across environments**" if report.forced else ""
    runs = "runs" if report.pairs > 1 else "run"
    lines = [
        f"### {mark} adrbench gate: {_summary(report)}",
        "",
        f"Baseline `{report.baseline_source}` ({runs} `{report.baseline_run}`); current {runs} "
        f"`{report.current_run}` on environment `{report.environment}`{forced}.",
        "",
        tabulate([_cells(r) for r in report.rows], headers=_HEADERS, tablefmt="github"),
        "",
    ]
    if report.failures:
        lines += ["**Failures**", "", *(f"- {r.message}" for r in report.failures), ""]
    notes = _notes(report)
    if notes:
        lines += ["**Notes**", "", *(f"- {n}" for n in notes), ""]
    lines += ["<details><summary>Rules</summary>", "", *(f"- {r}" for r in report.rules), ""]
    lines += ["</details>"]
    return "\n".join(lines) + "\n"


def render_json(report: GateReport) -> str:
    """Machine-readable report.

    Args:
        report: What the gate found.
    """
    data = {
        "passed": report.passed,
        "baseline_run": report.baseline_run,
        "baseline_source": report.baseline_source,
        "current_run": report.current_run,
        "environment": report.environment,
        "forced": report.forced,
        "pairs": report.pairs,
        "notes": list(report.notes),
        "rules": list(report.rules),
        "rows": [
            {
                "scenario": r.scenario,
                "metric": r.metric,
                "baseline": r.baseline,
                "current": r.current,
                "change": r.change,
                "threshold": r.threshold,
                "p_value": r.p_value,
                "verdict": r.verdict.value,
                "message": r.message,
            }
            for r in report.rows
        ],
        "failures": [r.message for r in report.failures],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _current_run(spec: str | None, results_dir: Path, *, include_interrupted: bool) -> RunRecord:
    # CI runs the suite into a scratch results directory and gates its newest run.
    if spec is not None and Path(spec).is_dir():
        directory = Path(spec)
        found = latest_run(directory, include_interrupted=include_interrupted)
        if found is None:
            raise ResultsError(
                f"{runs_dir(directory)}: no finished runs yet; run `adrbench run SUITE "
                f"--results-dir {directory}` first"
            )
        return found
    return resolve_run(spec, results_dir, include_interrupted=include_interrupted)


def run(args: argparse.Namespace) -> int:
    """Gate the current run against its baseline.

    Args:
        args: Parsed options (see :func:`add_arguments`).

    Returns:
        0 when nothing regressed, 1 otherwise (bad input raises ``UserError``: exit 2).
    """
    results_dir: Path = args.results_dir
    if args.config is None:
        config = load_config(args.pyproject)
    elif not args.config.is_file():
        what = "is a directory" if args.config.is_dir() else "does not exist"
        raise GateConfigError(
            f"--config {args.config}: {what}; name a pyproject.toml with [tool.adrbench.gate] "
            "or leave --config out"
        )
    else:
        config = load_config(args.config)
    if args.against is not None:
        report = _relative(args, config, results_dir)
    else:
        report = _committed(args, config, results_dir)
    render = {"table": render_table, "markdown": render_markdown, "json": render_json}
    print(render[args.format](report), end="")
    return 0 if report.passed else 1


def _baseline_commit(results_dir: Path, suite: str, profile: str) -> str | None:
    """The commit of the newest committed baseline of ``suite``/``profile`` measured on a clean
    tree (any environment: the relative gate re-measures that code here)."""
    found = [
        b.run
        for b in list_baselines(results_dir)
        if (b.run.suite, b.run.profile) == (suite, profile)
        and b.run.git.commit is not None
        and b.run.git.worktree_is_dirty is False
    ]
    if not found:
        return None
    return max(found, key=lambda r: r.started_at).git.commit


def _relative(args: argparse.Namespace, config: GateConfig, results_dir: Path) -> GateReport:
    for name in ("current", "baseline"):
        if getattr(args, name) is not None:
            raise GateConfigError(
                f"--{name} and --against exclude each other: --against measures both sides now"
            )
    repo = Path(args.pyproject).parent
    suite_path: Path = args.suite if args.suite.is_absolute() else repo / args.suite
    suite = load_suite(suite_path)  # the working tree's suite must load before anything runs
    ref = resolve_ref(
        args.against,
        repo,
        baseline_commit=_baseline_commit(results_dir, suite.name, args.profile),
    )
    run_side = subprocess_runner(
        suite_path,
        args.profile,
        data_dir=args.data_dir,
        only=args.only,
        sets=args.set,
    )
    print(
        f"relative gate: {ref.describe()} vs the working tree, {args.pairs} processes a side, "
        f"suite {suite_path} profile {args.profile}",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        if args.keep_runs is not None:
            work = Path(args.keep_runs)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="adrbench-gate-")))
        tree = stack.enter_context(checkout(repo, ref.commit))
        refs, currents = measure_pairs(
            Side("ref", tree),
            Side("current", repo, tuple(args.current_set)),
            args.pairs,
            run_side,
            work,
        )
    injected = f"; current side with {', '.join(args.current_set)}" if args.current_set else ""
    return evaluate_paired(
        refs,
        currents,
        for_relative(config),
        baseline_source=f"REF {ref.describe()}, measured here, interleaved{injected}",
    )


def _committed(args: argparse.Namespace, config: GateConfig, results_dir: Path) -> GateReport:
    current = _current_run(args.current, results_dir, include_interrupted=args.include_interrupted)
    if args.baseline is None:
        found = load_baseline(
            results_dir, current.environment.fingerprint, current.suite, current.profile
        )
        baseline, source = found.run, str(found.path)
    else:
        named = find_baseline(args.baseline, results_dir)
        if named is not None:
            baseline, source = named.run, str(named.path)
        else:
            baseline = resolve_run(
                args.baseline, results_dir, include_interrupted=args.include_interrupted
            )
            source = args.baseline
    return evaluate(baseline, current, config, baseline_source=source, force=args.force)
