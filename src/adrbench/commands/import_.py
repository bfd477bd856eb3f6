"""``adrbench import FILE...``: file runs made on other machines under ``results/runs/``.

Example::

    adrbench import ../shared/evidence/cuda-h200/20261128T180140Z-finetune_sts-full-bae1.json

Each file is validated (JSON, schema version with migration, required fields, an environment, not
a duplicate of a run already there) before any is written; measurements are kept as they are and
the run is written in the current schema, with its pytest-benchmark twin beside it. Exit status: 0
imported; 2 a file refused (one line naming it, the problem and the fix; nothing imported).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adrbench.commands import add_results_dir
from adrbench.results.store import import_runs, load_run

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="run JSON files")
    add_results_dir(parser)


def run(args: argparse.Namespace) -> int:
    for path in import_runs(args.files, args.results_dir):
        record = load_run(path)
        env = record.environment
        print(
            f"imported {record.run_id} ({record.suite}/{record.profile}, environment "
            f"{env.fingerprint}: {env.device_kind}, {env.device_name}) -> {path}"
        )
    return 0
