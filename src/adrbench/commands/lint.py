"""``adrbench lint``: check ADR files without judging them.

Examples::

    adrbench lint                       # every adr/NNNN-*.md
    adrbench lint adr/0002-qlora-skipped-for-small-models.md

Checks: YAML syntax and the front matter schema (MADR keys and ours), unique ids within an ADR and
unique ADR numbers, supersedes / superseded-by targets that exist, and every expression's syntax,
fact names and value kinds (string, number, boolean). Each problem names the file and line; all
problems of all files are printed in one pass.

Warnings do not fail: a status the project does not list (MADR's four unless ``[tool.adrbench]
statuses`` says otherwise; Nygard-style ADRs keep theirs under ``## Status``). Notes name files
that are skipped: an index or a template among the numbered files, and Markdown files not named
``NNNN-title.md``.

Exit status: 0 clean (warnings and notes allowed); 1 problems found; 2 bad input (no such directory
or ADR).
"""

from __future__ import annotations

import argparse

from adrbench.commands import add_adr_options, ensure_adr_dir
from adrbench.decisions.adr import adr_paths, lint, not_adr_files, resolve_adr_args
from adrbench.project import Settings

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
    settings: Settings = getattr(args, "settings", Settings())
    result = lint(
        [*everything, *(p for p in named if p.resolve() not in known)], statuses=settings.statuses
    )
    wanted = {p.resolve() for p in named}
    problems = [p for p in result.problems if p.path.resolve() in wanted]
    warnings = [p for p in result.warnings if p.path.resolve() in wanted]
    if not args.adrs:
        warnings += not_adr_files(args.adr_dir)
    for problem in sorted([*problems, *warnings], key=lambda p: (str(p.path), p.line)):
        print(problem)
    skipped = {w.path.resolve() for w in warnings if w.severity == "note"}
    checked = sum(1 for p in named if p.resolve() not in skipped)
    counted = sum(1 for w in warnings if w.severity == "warning")
    also = f", {counted} warning(s)" if counted else ""
    if problems:
        print(f"{len(problems)} problem(s){also} in {checked} ADR file(s)")
        return 1
    print(f"{checked} ADR file(s) OK{also}")
    return 0
