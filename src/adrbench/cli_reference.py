"""The command-line reference as Markdown, generated from the argparse parsers themselves.

``docs/reference/cli.md`` is this text (``docs/hooks.py`` puts it in at build time), so the
reference cannot drift from the commands: an option added to a parser is in the next build, and
an option without a help text fails :func:`missing_help` (a test, and the docs build).
"""

from __future__ import annotations

import argparse

from adrbench.cli import COMMANDS, build_parser

__all__ = ["cli_reference", "missing_help", "subparsers"]


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                child.description = child.description or helps.get(name)
            return dict(action.choices)
    return {}


def subparsers() -> dict[str, argparse.ArgumentParser]:
    """Each command's parser by its full name (``baseline update`` for a nested one), in the
    order ``adrbench --help`` lists them (:func:`adrbench.cli.build_parser`, every command
    declared)."""
    found: dict[str, argparse.ArgumentParser] = {}
    top = _children(build_parser())
    for name in COMMANDS:
        found[name] = top[name]
        for child, parser in _children(top[name]).items():
            found[f"{name} {child}"] = parser
    return found


def _options(command: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in command._actions if not isinstance(a, argparse._HelpAction)]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    # A table cell cannot hold "|" in a code span (the escape would show): such a metavar
    # (FINGERPRINT|this) is written as plain text.
    return text.replace("|", "\\|") if "|" in text else f"`{text}`"


def _row(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(_code(s) for s in action.option_strings)
        if action.nargs != 0:
            names += f" {_code(str(action.metavar or action.dest.upper()))}"
    else:
        names = _code(str(action.metavar or action.dest))
    default = action.default
    shown = (
        ""
        if default in (None, False, [], argparse.SUPPRESS) or not action.option_strings
        else f" (default: `{default}`)"
    )
    help_text = (action.help or "").replace("%%", "%")
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        help_text += f" One of: {', '.join(f'`{c}`' for c in action.choices)}."
    return f"| {names} | {_cell(help_text)}{shown} |"


def cli_reference() -> str:
    """Every command: its summary, usage line, epilog and a table of its arguments."""
    parts = [
        "Every command of `adrbench`, generated from its argparse parser when the docs are "
        "built (`adrbench COMMAND --help` prints the same). Exit status everywhere: 0 nothing "
        "to report, 1 a finding, 2 bad input (one line naming the file, the value and the fix); "
        "`check` adds 3, no evidence anywhere.\n"
    ]
    for name, command in subparsers().items():
        usage = " ".join(command.format_usage().removeprefix("usage: ").split())
        summary = (COMMANDS.get(name) or command.description or "").rstrip(".")
        level = "##" if name in COMMANDS else "###"
        parts.append(f"{level} adrbench {name}\n\n{summary}.\n\n```text\n{usage}\n```\n")
        rows = [_row(a) for a in _options(command)]
        if rows:
            parts.append("| argument | meaning |\n| --- | --- |\n" + "\n".join(rows) + "\n")
        if command.epilog:
            parts.append(f"{' '.join(command.epilog.split())}\n")
    return "\n".join(parts)


def missing_help() -> list[str]:
    """``adrbench COMMAND --option`` for every argument that has no help text (so no reference
    entry worth the name)."""
    missing = []
    for name, command in subparsers().items():
        for action in _options(command):
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                label = "/".join(action.option_strings) or action.dest
                missing.append(f"adrbench {name} {label}")
    return missing
