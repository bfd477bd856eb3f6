"""``adrbench baseline update|show``: the committed reference runs the gate compares against.

``update`` stores a run (default: the newest) as the baseline of its environment, suite and
profile under ``results/baselines/``; commit the file. ``show`` lists the stored baselines.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tabulate import tabulate

from adrbench.errors import ResultsError
from adrbench.gate.baseline import list_baselines, median_run, save_baseline
from adrbench.results.record import Status
from adrbench.results.store import resolve_run

_RESULTS_HELP = "results directory (default: results/ in the project root)"

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``update`` and ``show``.

    Args:
        parser: The subcommand's parser.
    """
    actions = parser.add_subparsers(
        dest="action",
        required=True,
        metavar="ACTION",
        help="update: store clean runs as a baseline; show: list the baselines",
    )
    update = actions.add_parser(
        "update", help="store a run as the baseline of its environment, suite and profile"
    )
    update.add_argument(
        "--run",
        metavar="RUN",
        action="append",
        help="run id or results file (default: newest); repeat it to store, per scenario, the "
        "median of several runs of the same code",
    )
    update.add_argument("--results-dir", type=Path, default=None, help=_RESULTS_HELP)
    show = actions.add_parser("show", help="list the stored baselines")
    show.add_argument("--results-dir", type=Path, default=None, help=_RESULTS_HELP)


def run(args: argparse.Namespace) -> int:
    """Update or show baselines.

    Args:
        args: Parsed options.

    Returns:
        0 (problems raise ``UserError``: exit 2).
    """
    results_dir: Path = args.results_dir
    if not results_dir.is_dir():
        raise ResultsError(
            f"{results_dir}: results directory does not exist; pass --results-dir DIR (the folder "
            "holding runs/ and baselines/)"
        )
    if args.action == "update":
        runs = [resolve_run(spec, results_dir) for spec in (args.run or [None])]
        record = median_run(runs)
        path = save_baseline(record, results_dir)
        print(
            f"baseline {record.environment.fingerprint}/{record.suite}-{record.profile} <- run "
            f"{record.run_id}\n{path}\ncommit it: git add {path}"
        )
        return 0
    baselines = list_baselines(results_dir)
    if not baselines:
        print(f"no baselines under {results_dir / 'baselines'}; run `adrbench baseline update`")
        return 0
    rows = []
    for b in baselines:
        ok = sum(1 for r in b.run.scenarios if r.status is Status.OK)
        dirty = " (dirty)" if b.run.git.worktree_is_dirty else ""
        commit = (b.run.git.commit or "?")[:10] + dirty
        rows.append([b.key, b.run.run_id, b.run.started_at, commit, f"{ok}/{len(b.run.scenarios)}"])
    headers = ("baseline", "run", "started", "commit", "ok scenarios")
    print(tabulate(rows, headers=headers, tablefmt="simple"))
    return 0
