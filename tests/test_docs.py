"""The documentation: the command-line reference covers every option, the README stays short.

The site itself is built by ``tox -e docs`` (``mkdocs build --strict``: a broken link fails).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

from adrbench.cli_reference import cli_reference, missing_help, subparsers

ROOT = Path(__file__).parents[1]


def test_every_option_has_a_reference_entry() -> None:
    # An option without help text would get an empty row: each must say what it does.
    assert missing_help() == []
    reference = cli_reference()
    for name, parser in subparsers().items():
        assert f"adrbench {name}\n" in reference
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                assert f"`{option}`" in reference, f"adrbench {name} {option}"


def test_an_option_without_help_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a command whose parser gains an option with no help text
    import adrbench.commands.lint as lint_command

    original = lint_command.add_arguments

    def with_bare_option(parser: argparse.ArgumentParser) -> None:
        original(parser)
        parser.add_argument("--undocumented")

    monkeypatch.setattr(lint_command, "add_arguments", with_bare_option)
    # THEN the check that the docs build and the test above rely on names it
    assert missing_help() == ["adrbench lint --undocumented"]


def test_the_docs_hook_puts_the_reference_into_the_cli_page() -> None:
    spec = importlib.util.spec_from_file_location("adrbench_docs_hooks", ROOT / "docs/hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    page = (ROOT / "docs/reference/cli.md").read_text(encoding="utf-8")
    built = hooks.on_page_markdown(page, page=None, config=None, files=None)
    assert hooks.MARKER not in built
    assert "## adrbench import" in built and "`--max-size` `SIZE`" in built


def test_the_readme_stays_a_front_page() -> None:
    # Reference and studies live in docs/: the README keeps what a newcomer needs first.
    size = len((ROOT / "README.md").read_bytes())
    assert size <= 10 * 1024, f"README.md is {size} bytes; move detail into docs/"
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "tox -e bench" in text and 'tox -e py -- -m "not gpu"' in text


def test_every_docs_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert [p for p in pages if f" {p}" not in nav] == []


def test_the_tutorials_suite_and_adr_are_valid(tmp_path: Path) -> None:
    # The tutorial's files, as a reader copies them: the suite loads and the ADR lints clean.
    import re

    from adrbench.decisions.adr import lint
    from adrbench.engine.suite import load_suite

    text = (ROOT / "docs/tutorial/first-decision-record.md").read_text(encoding="utf-8")
    blocks = dict((lang, body) for lang, body in re.findall(r"```(\w+)\n(.*?)```", text, re.S))
    suite = tmp_path / "my_first.toml"
    suite.write_text(blocks["toml"], encoding="utf-8")
    loaded = load_suite(suite)
    assert [s.name for s in loaded.scenarios("quick")] == ["full", "lora"]
    adr = tmp_path / "0006-lora-for-my-first-model.md"
    adr.write_text(blocks["markdown"], encoding="utf-8")
    result = lint([adr])
    assert result.problems == () and [a.evidence for a in result.adrs] == [("my_first",)]
