"""``adrbench gate``: fail a change that makes training slower, hungrier or less accurate.

Compares the current run with the committed baseline of its environment (``results/baselines/``),
rule by rule as configured in ``[tool.adrbench.gate]``; prints one table of every comparison and
every failure together. Exit 0 pass, 1 regression, 2 bad input (missing baseline, another
machine's baseline without ``--force``, corrupt file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tabulate import tabulate

from adrbench.errors import ResultsError
from adrbench.gate.baseline import find_baseline, load_baseline
from adrbench.gate.rules import GateConfigError, GateReport, Row, evaluate, load_config
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
    parser.add_argument("--format", choices=("table", "markdown", "json"), default="table")
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
    return [r.message for r in report.rows if r.message is not None and not r.verdict.fails]


def render_table(report: GateReport) -> str:
    """Plain-text report for a terminal or CI log.

    Args:
        report: What the gate found.
    """
    forced = " (forced across environments)" if report.forced else ""
    lines = [
        f"baseline: {report.baseline_source} (run {report.baseline_run})",
        f"current:  run {report.current_run} on environment {report.environment!r}{forced}",
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
    lines = [
        f"### {mark} adrbench gate: {_summary(report)}",
        "",
        f"Baseline `{report.baseline_source}` (run `{report.baseline_run}`); current run "
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


def _current_run(spec: str | None, results_dir: Path) -> RunRecord:
    # CI runs the suite into a scratch results directory and gates its newest run.
    if spec is not None and Path(spec).is_dir():
        directory = Path(spec)
        found = latest_run(directory)
        if found is None:
            raise ResultsError(
                f"{runs_dir(directory)}: no runs yet; run `adrbench run SUITE --results-dir "
                f"{directory}` first"
            )
        return found
    return resolve_run(spec, results_dir)


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
    current = _current_run(args.current, results_dir)
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
            baseline, source = resolve_run(args.baseline, results_dir), args.baseline
    report = evaluate(baseline, current, config, baseline_source=source, force=args.force)
    render = {"table": render_table, "markdown": render_markdown, "json": render_json}
    print(render[args.format](report), end="")
    return 0 if report.passed else 1
