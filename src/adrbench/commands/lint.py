"""``adrbench lint``: check ADR files without judging them.

Examples::

    adrbench lint                       # every adr/NNNN-*.md
    adrbench lint adr/0002-qlora-skipped-for-small-models.md

Checks: YAML syntax and the front matter schema (MADR keys and ours), known status values, unique
ids within an ADR and unique ADR numbers, supersedes / superseded-by targets that exist, and
every expression's syntax and fact names. Each problem names the file and line.

Exit status: 0 clean; 1 problems found (all of them are printed); 2 bad input (no such directory
or ADR).
"""

from __future__ import annotations

import argparse

from adrbench.commands import add_adr_options, ensure_adr_dir
from adrbench.decisions.adr import adr_paths, lint, resolve_adr_args

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options.

    Args:
        parser: The subcommand's parser.
    """
    add_adr_options(parser)


def run(args: argparse.Namespace) -> int:
    """Lint and print every problem.

    Args:
        args: Parsed options (``adrs``, ``adr_dir``).
    """
    ensure_adr_dir(args.adr_dir)
    everything = adr_paths(args.adr_dir)
    named = resolve_adr_args(args.adr_dir, args.adrs) if args.adrs else everything
    known = {p.resolve() for p in everything}
    # All ADRs are read so cross-references resolve; only the named ones are reported on.
    result = lint([*everything, *(p for p in named if p.resolve() not in known)])
    wanted = {p.resolve() for p in named}
    problems = [p for p in result.problems if p.path.resolve() in wanted]
    for problem in problems:
        print(problem)
    checked = len(named)
    if problems:
        print(f"{len(problems)} problem(s) in {checked} ADR file(s)")
        return 1
    print(f"{checked} ADR file(s) OK")
    return 0
