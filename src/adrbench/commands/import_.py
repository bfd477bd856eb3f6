"""``adrbench import FILE...``: file runs made on other machines under ``results/runs/``.

Example::

    adrbench import ../shared/evidence/cuda-h200/20261128T180140Z-finetune_sts-full-bae1.json

Each file is validated (JSON, schema version with migration, required fields, an environment, not
a duplicate of a run already there) before any is written; measurements are kept as they are and
the run is written in the current schema, with its pytest-benchmark twin beside it. A run id that
could not name a file inside ``results/runs/`` (``../x``, ``/abs``, empty, too long) is refused, a
file over ``--max-size`` (default 16 MiB) is refused unread, and the writes are all or nothing.
Exit status: 0 imported; 2 a file refused (one line naming it, the problem and the fix; nothing
imported).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adrbench.commands import add_results_dir
from adrbench.results.store import MAX_IMPORT_BYTES, import_runs, load_run
from adrbench.units import format_bytes, parse_quantity

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="run JSON files")
    parser.add_argument(
        "--max-size",
        type=_size,
        default=MAX_IMPORT_BYTES,
        metavar="SIZE",
        help=f"refuse a file larger than this (default {format_bytes(MAX_IMPORT_BYTES)}; e.g. "
        "256MiB)",
    )
    add_results_dir(parser)


def _size(text: str) -> int:
    try:
        value = parse_quantity(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error}; write e.g. 64MiB") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a size of at least 1 byte, e.g. 64MiB")
    return int(value)


def run(args: argparse.Namespace) -> int:
    for path in import_runs(args.files, args.results_dir, max_bytes=args.max_size):
        record = load_run(path)
        env = record.environment
        print(
            f"imported {record.run_id} ({record.suite}/{record.profile}, environment "
            f"{env.fingerprint}: {env.device_kind}, {env.device_name}) -> {path}"
        )
    return 0
