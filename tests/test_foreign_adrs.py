"""Other teams' ADRs: MADR with custom statuses and extra keys, Nygard files with a ``## Status``
section and no front matter, an index and templates (``tests/data/adr/foreign``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adrbench.cli import main
from adrbench.decisions.adr import lint
from adrbench.results.store import write_run
from factories import make_run

FOREIGN = Path(__file__).parent / "data" / "adr" / "foreign"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The foreign ADRs as adr/, with one CPU run in results/."""
    shutil.copytree(FOREIGN, tmp_path / "adr")
    write_run(make_run(), tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_lint_warns_on_a_custom_status_and_notes_the_skipped_files(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the foreign ADRs are linted
    assert main(["lint"]) == 0
    # THEN "on hold" is a warning, "Accepted" (any case) and Nygard's "Superseded by [4. ...]" are
    # fine, and the index and templates are skipped with a note
    assert capsys.readouterr().out.splitlines() == [
        "adr/0000-index.md:1: note: not a decision (an index); skipped",
        "adr/0003-cache-embeddings.md:4: warning: status: status 'on hold' is not one this "
        "project lists (proposed, rejected, accepted, deprecated); it is still judged. Add it to "
        "[tool.adrbench] statuses in pyproject.toml if it is yours, or use 'superseded by "
        "ADR-NNNN'",
        "adr/0099-template.md:1: note: not a decision (a template); skipped",
        "adr/adr-template.md:1: note: not named NNNN-title.md, so not read as an ADR; skipped",
        "4 ADR file(s) OK, 1 warning(s)",
    ]


def test_statuses_listed_in_pyproject_are_accepted(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.adrbench]\nstatuses = ["proposed", "accepted", "on hold"]\n', encoding="utf-8"
    )
    assert main(["lint", "3"]) == 0
    assert capsys.readouterr().out == "1 ADR file(s) OK\n"


def test_a_bad_statuses_setting_is_one_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text("[tool.adrbench]\nstatuses = 3\n", encoding="utf-8")
    assert main(["lint"]) == 2
    assert capsys.readouterr().err == (
        "adrbench lint: error: pyproject.toml: [tool.adrbench] statuses = 3 must be a non-empty "
        'list of status names, e.g. ["proposed", "accepted", "on hold"]\n'
    )


def test_nygard_status_sections_are_read_and_extra_keys_kept() -> None:
    result = lint(sorted(FOREIGN.glob("*.md")))
    assert result.problems == ()
    by_number = {a.number: a for a in result.adrs}
    assert sorted(by_number) == [1, 2, 3, 4]
    assert by_number[1].status == "Accepted"
    assert by_number[2].superseded_by == 4
    assert by_number[3].status == "on hold"
    assert by_number[3].front_matter["parent"] == "Decisions"
    assert by_number[3].front_matter["nav_order"] == 3


def test_check_judges_every_adr_despite_a_custom_status(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN check runs over the foreign ADRs (one has status "on hold")
    code = main(["check", "--no-probes", "--results", "latest"])
    out = capsys.readouterr().out
    # THEN every decision is judged, none refused
    assert code == 0, out
    assert "ADR-0003 Cache sentence embeddings [on hold]: no evidence" in out
    assert "ADR-0004 Use SQLite for tests [Accepted]: all claims hold" in out
    assert out.rstrip().endswith(
        "4 ADR(s): 0 trigger(s) fired; 0 claim(s) failed; 0 premise(s) "
        "stale; 0 inconclusive; 0 unknown — nothing to revisit."
    )


def test_lint_reports_every_problem_of_every_file_in_one_pass(tmp_path: Path) -> None:
    # GIVEN one file with a custom status and a type error, another with an unknown fact
    adr = tmp_path / "adr"
    adr.mkdir()
    (adr / "0001-a.md").write_text(
        "---\nstatus: approved\nclaims:\n  - id: c\n    text: t\n"
        "    holds_if: results.lora.status + 1 > 0\n---\n\n# A\n",
        encoding="utf-8",
    )
    (adr / "0002-b.md").write_text(
        "---\nstatus: nope\nsupersedes: [7]\nrevisit_when:\n  - id: t\n    text: t\n"
        "    fires_if: model.paramters >= 7B\n---\n\n# B\n",
        encoding="utf-8",
    )
    result = lint(sorted(adr.glob("*.md")))
    # THEN the type error, the unknown fact and the missing target all come in one pass
    messages = [f"{p.path.name}:{p.line}: {p.message}" for p in result.problems]
    assert messages == [
        "0001-a.md:6: '+' needs a number, got '<text>'",
        "0002-b.md:3: ADR 0007 does not exist (ADRs: 0001, 0002); fix the number",
        "0002-b.md:7: unknown name 'model.paramters'; nearest facts: model.parameters",
    ]
    # AND both statuses are warnings
    assert [(w.path.name, w.field) for w in result.warnings] == [
        ("0001-a.md", "status"),
        ("0002-b.md", "status"),
    ]


def test_lint_type_checks_comparisons_and_conditions(tmp_path: Path) -> None:
    path = tmp_path / "0001-a.md"
    path.write_text(
        "---\nclaims:\n  - id: a\n    text: t\n    holds_if: env.cuda_available == 'yes'\n"
        "  - id: b\n    text: t\n    holds_if: model.parameters * 2\n---\n\n# A\n",
        encoding="utf-8",
    )
    messages = [p.message for p in lint([path]).problems]
    assert messages == [
        "cannot compare True == 'yes'; both sides must be numbers, strings or booleans alike",
        "is a number, not true or false; write a condition, e.g. 'model.parameters >= 7B'",
    ]
