"""``adrbench migrate [FILE...]``: rewrite results files in the current schema.

Example::

    adrbench migrate                       # every run and baseline under results/
    adrbench migrate results/evidence/qlora-cpu/runs/*.json

Each file goes through the ``update_to_N`` migrations of ``adrbench.results.record`` and is
written back atomically (its pytest-benchmark twin regenerated); migrations derive fields and
drop machine paths, they never change a measurement. Every file is read and migrated before any
is written, and the writes are all or nothing. Exit status: 0 done; 2 a file that cannot be read
or written (one line naming it; no file is changed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adrbench.commands import add_results_dir
from adrbench.results.store import plan_upgrade, upgrade_files

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="run or baseline files (default: every *.json under RESULTS_DIR except twins)",
    )
    add_results_dir(parser)


def run(args: argparse.Namespace) -> int:
    files = list(args.files) or sorted(
        p
        for p in args.results_dir.rglob("*.json")
        if not p.name.endswith(".benchmark.json") and not p.name.startswith(".")
    )
    # Every file is read and migrated before any is written: a bad one rewrites nothing.
    plans = [(path, plan_upgrade(path)) for path in files]
    upgrade_files([rewrite for _path, rewrites in plans for rewrite in rewrites])
    for path, rewrites in plans:
        print(f"{'rewritten' if rewrites else 'current  '} {path}")
    return 0
