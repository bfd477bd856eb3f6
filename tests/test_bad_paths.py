"""Bad paths never destroy: each is one line and exit 2, with nothing under adr/ changed; and the
commands find the project root from any subdirectory.

Probes are off (``--no-probes``) wherever ADRs are judged: premises on probes are then unknown.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adrbench.cli import main
from adrbench.results.store import write_run
from factories import make_run
from test_report_cli import ADR_002

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """adr/ with ADR-0002 reported on one CPU run, and results/ holding that run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adr").mkdir()
    (tmp_path / "adr" / "0002-qlora-skipped-for-small-models.md").write_bytes(
        ADR_002.encode("utf-8")
    )
    write_run(make_run(), tmp_path / "results")
    assert main(["report", "--no-probes"]) == 0
    return tmp_path


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def one_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"adrbench {command}: error: "), err
    return lines[0].removeprefix(f"adrbench {command}: error: ")


@pytest.mark.parametrize("command", ["report", "check"])
def test_a_results_folder_that_does_not_exist_is_an_error_and_changes_nothing(
    command: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project / "adr")
    capsys.readouterr()
    # WHEN report or check is pointed at a folder that does not exist
    code = main([command, "--no-probes", "--results-dir", "nope"])
    # THEN exit 2, one line naming the folder and the fix, and adr/ is untouched
    assert code == 2
    assert one_error(capsys, command) == (
        "nope: results directory does not exist; pass --results-dir DIR (the folder holding "
        "runs/), or run `adrbench run bench/finetune_sts.toml` first"
    )
    assert snapshot(project / "adr") == before


def test_a_results_folder_without_runs_is_an_error_for_report(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "empty" / "runs").mkdir(parents=True)
    before = snapshot(project / "adr")
    capsys.readouterr()
    assert main(["report", "--no-probes", "--results-dir", "empty"]) == 2
    assert one_error(capsys, "report") == (
        f"{Path('empty') / 'runs'}: no runs; pass --results-dir DIR (the folder holding runs/), "
        "or run `adrbench run bench/finetune_sts.toml` first"
    )
    assert snapshot(project / "adr") == before


def test_a_results_folder_without_runs_is_no_evidence_for_check(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a results folder with an empty runs/ WHEN every environment is checked
    # THEN exit 3 (no evidence anywhere, issue 11), saying so, and adr/ is untouched
    (project / "empty" / "runs").mkdir(parents=True)
    before = snapshot(project / "adr")
    capsys.readouterr()
    assert main(["check", "--no-probes", "--results-dir", "empty"]) == 3
    assert capsys.readouterr().out.startswith(
        f"No evidence anywhere: {Path('empty') / 'runs'} holds no run"
    )
    assert snapshot(project / "adr") == before


def test_report_refuses_to_replace_confirmed_verdicts_with_unknown_ones(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN results that hold only another suite's run (ADR-0002's claim would turn unknown)
    write_run(make_run(suite="other_suite"), project / "other")
    before = snapshot(project / "adr")
    capsys.readouterr()
    # WHEN report regenerates from them
    code = main(["report", "--no-probes", "--results-dir", "other"])
    # THEN it refuses, naming the ADR, and writes nothing
    assert code == 2
    assert one_error(capsys, "report") == (
        "other: regenerating would replace confirmed verdicts with unknown ones in ADR-0002 "
        "(1 -> 3 unknown); nothing written. Point --results-dir at the runs that confirmed them, "
        "or pass --allow-unconfirmed to write anyway"
    )
    assert snapshot(project / "adr") == before
    # AND --allow-unconfirmed writes anyway
    assert main(["report", "--no-probes", "--results-dir", "other", "--allow-unconfirmed"]) == 0
    assert snapshot(project / "adr") != before


def test_gate_config_that_does_not_exist_is_an_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["gate", "--config", "missing.toml"]) == 2
    assert one_error(capsys, "gate") == (
        "--config missing.toml: does not exist; name a pyproject.toml with [tool.adrbench.gate] "
        "or leave --config out"
    )


def test_baseline_show_on_a_missing_results_folder_is_an_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["baseline", "show", "--results-dir", "nope"]) == 2
    assert one_error(capsys, "baseline") == (
        "nope: results directory does not exist; pass --results-dir DIR (the folder holding "
        "runs/ and baselines/)"
    )


def test_run_on_a_directory_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(REPO / "bench")]) == 2
    assert one_error(capsys, "run").startswith(f"{REPO / 'bench'}: is a directory; name a suite")


def test_run_with_set_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    suite = str(REPO / "bench" / "finetune_sts.toml")
    assert main(["run", suite, "--set", "name=x"]) == 2
    assert one_error(capsys, "run").startswith("--set 'name=x': 'name' cannot be overridden")


def test_commands_find_the_project_root_from_a_subdirectory(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a project marked by pyproject.toml, entered two folders deep
    (project / "pyproject.toml").write_text('[tool.adrbench]\nstatuses = ["accepted"]\n')
    deeper = project / "docs" / "deeper"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    capsys.readouterr()
    # WHEN lint, check and report --check run there
    for command in (["lint"], ["check", "--no-probes"], ["report", "--check", "--no-probes"]):
        code = main(command)
        captured = capsys.readouterr()
        # THEN each finds adr/ and results/ at the root and says which root it used
        assert code == 0, captured
        assert captured.err.startswith(f"adrbench: project root {project} (above the current"), (
            captured.err
        )
    main(["baseline", "show"])
    assert "no baselines under ../../results/baselines" in capsys.readouterr().out
