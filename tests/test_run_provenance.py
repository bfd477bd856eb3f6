"""A run records the code it started with, and says so when the code changed while it ran."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from adrbench.cli import main
from adrbench.commands import run as run_command
from adrbench.engine import runner
from adrbench.engine.scenario import Scenario
from adrbench.results.record import GitInfo, ScenarioResult
from factories import make_skipped


def _suite(tmp_path: Path) -> Path:
    suite = tmp_path / "prov.toml"
    suite.write_text('name = "prov"\n[profiles.quick]\n[[scenario]]\nname = "only"\n')
    return suite


def _skipped(scenarios: Sequence[Scenario], **_: Any) -> tuple[ScenarioResult, ...]:
    return tuple(make_skipped(s.name, "test", "not run: provenance test") for s in scenarios)


@pytest.mark.parametrize("changes", [True, False])
def test_a_run_records_the_commit_and_code_it_started_with(
    tmp_path: Path,
    tiny_stsb: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    changes: bool,
) -> None:
    # GIVEN a repository whose HEAD and measuring code move on (or not) while the scenarios run
    commits = iter(["a" * 40, "b" * 40] if changes else ["a" * 40, "a" * 40])
    hashes = iter(["1" * 64, "2" * 64] if changes else ["1" * 64, "1" * 64])
    monkeypatch.setattr(
        run_command, "capture_git", lambda _where=None: GitInfo(next(commits), "main", False)
    )
    monkeypatch.setattr(run_command, "measuring_code_sha256", lambda: next(hashes))
    monkeypatch.setattr(runner, "run_scenarios", _skipped)  # run imports it when it starts
    results = tmp_path / "results"
    # WHEN the suite runs
    argv = ["run", str(_suite(tmp_path)), "--profile", "quick", "--results-dir", str(results)]
    assert main([*argv, "--data-dir", str(tiny_stsb)]) == 0
    # THEN the record names the first commit and code hash: what the scenarios started with
    (written,) = [p for p in (results / "runs").glob("*.json") if "benchmark" not in p.name]
    record = json.loads(written.read_text())
    assert record["git"]["commit"] == "a" * 40
    assert record["provenance"]["measuring_code_sha256"] == "1" * 64
    # AND a change while it ran is said once, naming both ends
    err = capsys.readouterr().err
    if changes:
        assert "commit aaaaaaaaaaaa -> bbbbbbbbbbbb" in err
        assert "measuring code 111111111111 -> 222222222222" in err
    else:
        assert "while this run went on" not in err
