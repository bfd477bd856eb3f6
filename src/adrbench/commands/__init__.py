"""One module per ``adrbench`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``.

The options several commands share are declared once here, so they read the same everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = [
    "add_adr_options",
    "add_include_interrupted",
    "add_no_probes",
    "add_results_dir",
    "ensure_adr_dir",
    "ensure_runs",
]


def add_adr_options(parser: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """``ADR ...`` (files or numbers) and ``--adr-dir``."""
    if positional:
        parser.add_argument(
            "adrs", nargs="*", metavar="ADR", help="ADR files or numbers (default: all ADRs)"
        )
    parser.add_argument(
        "--adr-dir",
        type=Path,
        default=None,
        help="ADR directory (default: adr/ in the project root, found from any subdirectory)",
    )


def add_results_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="results directory holding runs/ and baselines/ (default: results/ in the project "
        "root)",
    )


def add_include_interrupted(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--include-interrupted",
        action="store_true",
        help="let a run that a signal stopped part-way be evidence (its canceled scenarios stay "
        "unknown); by default such a run is passed over, and refused when named",
    )


def add_no_probes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-probes",
        dest="probes",
        action="store_false",
        help="do not run the premise probes (their premises are then unknown)",
    )


def ensure_adr_dir(adr_dir: Path) -> None:
    from adrbench.errors import UserError

    if not adr_dir.is_dir():
        raise UserError(f"{adr_dir}: no such ADR directory; pass --adr-dir or create it")


def ensure_runs(results_dir: Path) -> None:
    """A results folder that does not exist or holds no runs is bad input, never "no evidence":
    judging or reporting on it would replace every verdict with unknown."""
    from adrbench.errors import ResultsError
    from adrbench.results.store import iter_runs, runs_dir

    if not results_dir.is_dir():
        what = "is not a directory" if results_dir.exists() else "does not exist"
        raise ResultsError(
            f"{results_dir}: results directory {what}; pass --results-dir DIR (the folder holding "
            "runs/), or run `adrbench run bench/finetune_sts.toml` first"
        )
    if next(iter_runs(results_dir), None) is None:
        raise ResultsError(
            f"{runs_dir(results_dir)}: no runs; pass --results-dir DIR (the folder holding "
            "runs/), or run `adrbench run bench/finetune_sts.toml` first"
        )
