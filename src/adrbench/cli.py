"""``adrbench`` command line. Each subcommand lives in ``adrbench.commands.<name>``.

Exit status everywhere: 0 nothing to report, 1 a finding (failed scenario, fired trigger, failed
claim, regression, stale report), 2 bad input (a ``UserError``: printed on one line).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from adrbench import __version__
from adrbench.engine.interrupt import Interrupted, exit_status
from adrbench.errors import UserError
from adrbench.project import find_root, load_settings

__all__ = ["COMMANDS", "main"]

# name -> module in adrbench.commands exposing add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, str] = {
    "run": "Run a benchmark suite, one fresh process per scenario; write results/runs/<id>.json",
    "report": "Regenerate ADR appendices, charts, evidence blocks and adr/README.md from results",
    "gate": "Fail on slower, hungrier or less accurate training than the committed baseline",
    "baseline": "Store (update) or list (show) the per-environment baselines the gate uses",
    "check": "Judge each ADR's claims, triggers and premises on every environment's evidence",
    "lint": "Check ADR front matter, ids, statuses, cross-references and expressions",
    "import": "Validate runs made on other machines and file them under results/runs/",
    "migrate": "Rewrite results files in the current schema (measurements untouched)",
    "draft": "Write a proposed ADR superseding one whose revisit trigger fired",
    "estimate": "Estimate peak training memory by component; check it against measured runs",
}
_MODULES = {"import": "import_"}  # `import` is a Python keyword

EXIT_OK, EXIT_FINDING, EXIT_BAD_INPUT = 0, 1, 2


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``adrbench`` parser.

    Args:
        only: Import and declare the options of this command alone (the one being run), so
            ``adrbench lint`` never imports ``run``'s training stack; None declares every one.
    """
    parser = argparse.ArgumentParser(prog="adrbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"adrbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            module = importlib.import_module(f"adrbench.commands.{_MODULES.get(name, name)}")
            module.add_arguments(command)
            command.set_defaults(_run=module.run)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command named on the command line (the first word that is not an option)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


# Options whose default lies in the project root (the command leaves them None when not given).
_ROOT_DEFAULTS = {"adr_dir": "adr", "results_dir": "results", "config": None}


def use_project_root(args: argparse.Namespace) -> None:
    """Fill the path options left at their default from the project root (see
    :mod:`adrbench.project`), say which root when it is not the current folder, and read
    ``[tool.adrbench]`` into ``args.settings`` (its file into ``args.pyproject``).

    Args:
        args: Parsed options; changed in place.
    """
    root = find_root()
    base = Path(".")
    if root is not None and root != Path.cwd().resolve():
        base = Path(os.path.relpath(root))
        print(f"adrbench: project root {root} (above the current folder)", file=sys.stderr)
    for name, default in _ROOT_DEFAULTS.items():
        if default is not None and getattr(args, name, "") is None:
            setattr(args, name, base / default)
    args.pyproject = base / "pyproject.toml"
    args.settings = load_settings(args.pyproject)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command(words)).parse_args(words)
    try:
        use_project_root(args)
        code: int = args._run(args)
    except UserError as error:
        print(f"adrbench {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM / SIGHUP where handled
        signum = interrupt.signum if isinstance(interrupt, Interrupted) else signal.SIGINT
        name = signal.Signals(signum).name
        print(f"adrbench {args.command}: interrupted ({name})", file=sys.stderr)
        return exit_status(signum)
    return code


if __name__ == "__main__":
    sys.exit(main())
