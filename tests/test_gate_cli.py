"""``adrbench gate`` end to end on synthetic results files: exit status, table, messages."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from adrbench.cli import main
from adrbench.gate.baseline import save_baseline
from adrbench.results.record import ScenarioResult
from adrbench.results.store import write_run
from factories import make_environment, make_ok, make_run

DATA = Path(__file__).parent / "data" / "gate"
# ADRBENCH_UPDATE_GOLDEN=1 rewrites tests/data/gate/*.txt|md (then review the diff).
UPDATE_GOLDEN = os.environ.get("ADRBENCH_UPDATE_GOLDEN") == "1"


def golden(name: str, out: str) -> str:
    if UPDATE_GOLDEN:
        (DATA / name).write_text(out, encoding="utf-8")
    return (DATA / name).read_text(encoding="utf-8")


CPU = "cpu-2core-24g"
BASE_ID = "20261128T120000Z-finetune_sts-quick-0001"
CURRENT_ID = "20261128T130000Z-finetune_sts-quick-0002"
BASE_TIMES = tuple(0.5 + 0.1 * (i % 5) for i in range(20))


def ok(
    name: str = "full",
    factor: float = 1.0,
    *,
    peak_rss_bytes: int = 1_700_000_000,
    test_spearman: float = 0.85,
) -> ScenarioResult:
    return make_ok(
        name,
        method="full" if name == "full" else "lora",
        step_times_s=[t * factor for t in BASE_TIMES],
        peak_rss_bytes=peak_rss_bytes,
        test_spearman=test_spearman,
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with no pyproject.toml: the gate uses its built-in defaults."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def setup_runs(
    project: Path,
    baseline: Sequence[ScenarioResult],
    current: Sequence[ScenarioResult],
    *,
    baseline_env: str = CPU,
) -> None:
    results = project / "results"
    base = make_run(list(baseline), run_id=BASE_ID, environment=make_environment(baseline_env))
    write_run(base, results)
    save_baseline(base, results)
    cur = make_run(
        list(current),
        run_id=CURRENT_ID,
        environment=make_environment(CPU),
        started_at="2026-11-28T13:00:00Z",
    )
    write_run(cur, results)


def gate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["gate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_unchanged_code_passes_with_exit_0(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_runs(project, [ok(), ok("lora")], [ok(), ok("lora")])
    code, out, _err = gate(capsys)
    assert code == 0
    assert out.splitlines()[-1] == "PASS: 8 comparisons, no regression"


def test_a_time_regression_exits_1_with_the_full_table(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN lora 20% slower at every step than in the committed baseline
    setup_runs(project, [ok(), ok("lora")], [ok(), ok("lora", 1.2)])
    # WHEN the gate runs with its defaults
    code, out, _err = gate(capsys)
    # THEN it exits 1 and prints every comparison, then the failure
    assert code == 1
    assert out == golden("time_regression.txt", out)


def test_a_memory_regression_exits_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_runs(project, [ok()], [ok(peak_rss_bytes=1_900_000_000)])
    code, out, _err = gate(capsys)
    assert code == 1
    assert out.splitlines()[-2:] == [
        "FAIL: 1 of 4 comparisons failed",
        "  - full: train_peak_anon_rss_bytes rose +11.8% (1.35 GiB -> 1.50 GiB), beyond the 5.0% "
        "allowed and significant (p < 0.0001, alpha 0.01)",
    ]


def test_an_accuracy_drop_bought_with_speed_exits_1(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_runs(project, [ok()], [ok(factor=0.6, test_spearman=0.83)])
    code, out, _err = gate(capsys)
    assert code == 1
    assert out.splitlines()[-3:] == [
        "FAIL: 2 of 4 comparisons failed",
        "  - full: test_spearman fell 0.0200 (0.8500 -> 0.8300), beyond the 0.0100 allowed",
        "  - full: step time changed -40.0% (faster) but test_spearman fell 0.0200 (0.8500 -> "
        "0.8300), more than the 0.0100 allowed for a faster run; speed may not be bought with "
        "accuracy",
    ]


def test_a_significant_but_small_change_exits_0(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a project whose machine is quiet (0.5% process noise) and a certain +3% slowdown
    (project / "pyproject.toml").write_text(
        "[tool.adrbench.gate]\n"
        "[[tool.adrbench.gate.rules]]\n"
        'kind = "step_time"\nmax_increase = "8%"\nprocess_cv = "0.5%"\n',
        encoding="utf-8",
    )
    setup_runs(project, [ok()], [ok(factor=1.03)])
    code, out, _err = gate(capsys, "--format", "json")
    # THEN p is tiny but the change is under the threshold: pass
    assert code == 0
    (row,) = json.loads(out)["rows"]
    assert (row["change"], row["threshold"], row["verdict"]) == ("+3.0%", "+8.0%", "pass")
    assert row["p_value"] < 1e-4


def test_another_machines_baseline_exits_2_with_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN only a baseline recorded on a CUDA box, named explicitly
    setup_runs(project, [ok()], [ok()], baseline_env="cuda-a100")
    code, out, err = gate(capsys, "--baseline", "cuda-a100/finetune_sts-quick")
    assert (code, out) == (2, "")
    path = Path("results/baselines/cuda-a100/finetune_sts-quick.json")
    assert err == (
        f"adrbench gate: error: {path}: baseline run {BASE_ID} was measured on environment "
        f"'cuda-a100' but current run {CURRENT_ID} on {CPU!r}; timings from different machines "
        f"are not comparable — record a baseline for this machine with `adrbench baseline update "
        f"--run {CURRENT_ID}` (and commit it), or pass --force\n"
    )


def test_force_compares_across_machines(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_runs(project, [ok()], [ok()], baseline_env="cuda-a100")
    code, out, _err = gate(capsys, "--baseline", BASE_ID, "--force")
    assert code == 0
    assert out.splitlines()[1] == (
        f"current:  run {CURRENT_ID} on environment {CPU!r} (forced across environments)"
    )


def test_a_missing_baseline_exits_2_with_the_fix(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a baseline for another machine only; the gate looks for this machine's
    setup_runs(project, [ok()], [ok()], baseline_env="cuda-a100")
    code, out, err = gate(capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"adrbench gate: error: results/baselines/{CPU}/finetune_sts-quick.json: no baseline for "
        f"environment {CPU!r} (suite 'finetune_sts', profile 'quick'); baselines exist for: "
        "cuda-a100; record one with `adrbench baseline update` after a clean run on this "
        "machine, and commit it\n"
    )


def test_a_corrupt_current_run_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_runs(project, [ok()], [ok()])
    corrupt = project / "results" / "runs" / f"{CURRENT_ID}.json"
    corrupt.write_text("{", encoding="utf-8")
    code, _out, err = gate(capsys)
    assert code == 2
    assert err == (
        f"adrbench gate: error: results/runs/{CURRENT_ID}.json: not valid JSON (Expecting "
        "property name enclosed in double quotes at line 1 column 2); restore it from git or "
        "delete it and rerun `adrbench run`\n"
    )


def test_a_bad_gate_config_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.adrbench.gate]\n[[tool.adrbench.gate.rules]]\nkind = "speed"\n', encoding="utf-8"
    )
    setup_runs(project, [ok()], [ok()])
    code, _out, err = gate(capsys)
    assert code == 2
    assert err == (
        "adrbench gate: error: pyproject.toml: [[tool.adrbench.gate.rules]] #1: kind='speed' is "
        "not a rule kind; choose one of 'step_time', 'ratio', 'delta', 'joint'\n"
    )


def test_markdown_for_a_ci_job_summary(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_runs(project, [ok(), ok("lora")], [ok(), ok("lora", 1.2)])
    code, out, _err = gate(capsys, "--format", "markdown")
    assert code == 1
    assert out == golden("time_regression.md", out)


def test_json_lists_every_row_and_the_failures(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_runs(project, [ok()], [ok(factor=1.2)])
    code, out, _err = gate(capsys, "--format", "json", "--current", CURRENT_ID)
    data = json.loads(out)
    assert code == 1
    assert data["passed"] is False
    assert [r["verdict"] for r in data["rows"]] == ["REGRESSION", "pass", "pass", "pass"]
    assert data["failures"] == [
        "full: step_time_s rose +20.0% (0.7 s -> 0.84 s median step), beyond the +8.0% allowed "
        "and significant (p < 0.0001, alpha 0.01)"
    ]


def test_a_changed_benchmark_is_reported_as_a_note_not_a_failure(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = ok(factor=2.0)
    changed = replace(changed, fingerprint="0000000000000000")
    setup_runs(project, [ok()], [changed])
    code, out, _err = gate(capsys)
    assert code == 0
    assert out.splitlines()[-2] == "notes:"


def test_current_may_be_a_results_directory_whose_newest_run_is_gated(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the committed baseline and, as in CI, the new run in a scratch results directory
    setup_runs(project, [ok()], [ok()])
    scratch = project / "scratch"
    write_run(make_run([ok(factor=1.2)], run_id="20261128T140000Z-x", started_at="x"), scratch)
    code, out, _err = gate(capsys, "--current", str(scratch), "--format", "json")
    assert code == 1
    assert json.loads(out)["current_run"] == "20261128T140000Z-x"


def test_an_empty_current_directory_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "empty").mkdir()
    code, _out, err = gate(capsys, "--current", "empty")
    assert code == 2
    assert err == (
        "adrbench gate: error: empty/runs: no finished runs yet; run `adrbench run SUITE "
        "--results-dir empty` first\n"
    )
