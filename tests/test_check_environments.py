"""``adrbench check`` across environments: every machine with evidence, ``--env``, exit 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adrbench import machine
from adrbench.cli import main
from adrbench.engine import environment
from adrbench.results import store
from adrbench.results.record import Environment
from factories import make_environment, make_finetune_sts_run

REPO_ADRS = Path(__file__).parents[1] / "adr"
THIS = make_environment("this-machine")
CUDA = make_environment("cuda-box", device_kind="cuda", device_name="H200", cuda_available=True)
CPU_ELSEWHERE = make_environment("cpu-elsewhere")


@pytest.fixture(autouse=True)
def this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine is ``this-machine`` (no torch import, no real fingerprint)."""

    def capture() -> Environment:
        return THIS

    monkeypatch.setattr(environment, "capture_environment", capture)
    monkeypatch.setattr(machine, "this_environment", capture)  # not what a cache remembers


def _results(tmp_path: Path, *environments: Environment) -> Path:
    directory = tmp_path / "results"
    directory.mkdir(exist_ok=True)
    for index, env in enumerate(environments):
        run_id = f"20261128T12000{index}Z-finetune_sts-full-000{index}"
        run = make_finetune_sts_run(run_id=run_id, environment=env)
        store.write_run(run, directory)
    return directory


def check(results_dir: Path, *extra: str) -> int:
    args = ["check", "--adr-dir", str(REPO_ADRS), "--results-dir", str(results_dir)]
    return main([*args, "--no-probes", *extra])


def test_no_evidence_anywhere_says_so_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a results directory with no runs WHEN checked THEN exit 3 and one sentence saying so
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    assert check(results) == 3
    assert capsys.readouterr().out == (
        f"No evidence anywhere: {results / 'runs'} holds no run, so no ADR can be judged. Run "
        "`adrbench run bench/finetune_sts.toml` here, or `adrbench import FILE` a run made "
        "elsewhere.\n"
    )


def test_evidence_elsewhere_is_judged_and_this_machine_is_said_to_have_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN runs of a CUDA machine and another CPU machine, none of this one
    results = _results(tmp_path, CUDA, CPU_ELSEWHERE)
    # WHEN checked
    code = check(results)
    out = capsys.readouterr().out
    # THEN both are judged (sorted by fingerprint), the CUDA trigger fires on the CUDA box only,
    # and the output says this machine has no evidence of its own
    assert code == 1
    heads = [line for line in out.splitlines() if line.startswith("Environment ")]
    assert heads == [
        "Environment cpu-elsewhere: cpu, cpu",
        "Environment cuda-box: cuda, H200",
    ]
    cpu_part, cuda_part = out.split("Environment cuda-box")
    assert "  not fired  trigger  cuda " in cpu_part
    assert "  FIRED      trigger  cuda " in cuda_part
    *_, summary, last = out.splitlines()
    # (the repository's ADRs are judged, so later ones of suite finetune_sts may join the list;
    # these three must be in it; ADR-0005 is of suite speed_levers, which has no run here)
    assert summary.startswith("2 environment(s) judged; revisit ADR-0001 on cpu-elsewhere, ")
    for revisit in ("ADR-0001 on cuda-box", "ADR-0002 on cuda-box"):
        assert revisit in summary
    assert "ADR-0005 on" not in summary.split("; not judged")[0]
    assert (
        "not judged (no run of their suites): ADR-0005 on cpu-elsewhere, ADR-0005 on cuda-box"
        in (summary)
    )
    assert last == (
        "This machine (this-machine) has no evidence of its own: run `adrbench run "
        "bench/finetune_sts.toml` to add it."
    )


def test_env_narrows_to_one_environment_and_this_means_this_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN runs of this machine and of a CUDA machine
    results = _results(tmp_path, THIS, CUDA)
    # WHEN narrowed to this machine THEN only it is judged (no CUDA trigger fires)
    check(results, "--env", "this", "2")
    out = capsys.readouterr().out
    assert "Environment this-machine (this machine): cpu" in out
    assert "cuda-box" not in out
    # WHEN narrowed by a fingerprint prefix THEN only that one, and its trigger fires
    assert check(results, "--env", "cuda", "2") == 1
    out = capsys.readouterr().out
    assert "Environment cuda-box: cuda, H200" in out and "this-machine" not in out.split("\n")[0]


def test_env_without_evidence_exits_3_naming_the_environments_that_have_some(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN only a CUDA machine's run WHEN --env this THEN exit 3, naming what exists
    results = _results(tmp_path, CUDA)
    assert check(results, "--env", "this") == 3
    assert capsys.readouterr().out == (
        f"No evidence for this machine (this-machine) in {results / 'runs'}; environments with "
        "evidence: cuda-box.\n"
    )


def test_json_lists_every_environment_with_its_staleness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = _results(tmp_path, THIS, CUDA)
    check(results, "--format", "json")
    data = json.loads(capsys.readouterr().out)
    assert data["this_environment"] == "this-machine"
    assert data["this_environment_has_evidence"] is True
    assert [e["run"]["environment"] for e in data["environments"]] == ["cuda-box", "this-machine"]
    assert [e["this_machine"] for e in data["environments"]] == [False, True]
    assert all(isinstance(e["stale"], bool) for e in data["environments"])


def test_help_documents_exit_status_3(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    assert "3 no evidence anywhere" in " ".join(capsys.readouterr().out.split())
