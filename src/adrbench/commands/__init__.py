"""One module per ``adrbench`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``.

The options several commands share are declared once here, so they read the same everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_adr_options", "add_no_probes", "add_results_dir", "ensure_adr_dir"]


def add_adr_options(parser: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """``ADR ...`` (files or numbers) and ``--adr-dir``."""
    if positional:
        parser.add_argument(
            "adrs", nargs="*", metavar="ADR", help="ADR files or numbers (default: all ADRs)"
        )
    parser.add_argument(
        "--adr-dir", type=Path, default=Path("adr"), help="ADR directory (default: adr)"
    )


def add_results_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        help="results directory holding runs/ and baselines/ (default: results)",
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
