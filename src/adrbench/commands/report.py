"""``adrbench report``: regenerate each ADR's appendix, charts and evidence block, and the index.

Examples::

    adrbench report                       # write adr/appendix/*.md, *.svg, blocks, adr/README.md
    adrbench report --check               # CI: exit 1 listing the files that are out of date

Exit status: 0 written (or, with ``--check``, already current); 1 with ``--check`` when some file
would change; 2 bad input (a broken ADR, corrupt results, unpaired markers, a results folder that
does not exist or holds no runs, or verdicts that would turn unknown without
``--allow-unconfirmed``).
"""

from __future__ import annotations

import argparse

from adrbench.commands import (
    add_adr_options,
    add_include_interrupted,
    add_no_probes,
    add_results_dir,
    ensure_adr_dir,
    ensure_runs,
)
from adrbench.reports.render import report_all

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options.

    Args:
        parser: The subcommand's parser.
    """
    add_adr_options(parser, positional=False)
    add_results_dir(parser)
    add_no_probes(parser)
    add_include_interrupted(parser)
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and name the files regenerating would change",
    )
    parser.add_argument(
        "--allow-unconfirmed",
        action="store_true",
        help="write even when an ADR would get more unknown verdicts than its committed evidence "
        "block shows (default: refuse, exit 2, write nothing)",
    )


def run(args: argparse.Namespace) -> int:
    """Regenerate (or check) the reports.

    Args:
        args: Parsed options (``adr_dir``, ``results_dir``, ``check``, ``probes``).
    """
    ensure_adr_dir(args.adr_dir)
    ensure_runs(args.results_dir)
    changed = report_all(
        args.adr_dir,
        args.results_dir,
        check=args.check,
        probes=args.probes,
        allow_unconfirmed=args.allow_unconfirmed,
        include_interrupted=args.include_interrupted,
    )
    if args.check:
        if not changed:
            print("reports are up to date")
            return 0
        print(f"{len(changed)} report file(s) are out of date; run `adrbench report`:")
        for path in changed:
            print(f"  {path}")
        return 1
    for path in changed:
        print(f"wrote {path}" if path.exists() else f"removed {path} (no longer generated)")
    if not changed:
        print("reports are up to date; nothing written")
    return 0
