"""``adrbench check`` and ``adrbench lint`` end to end: output, formats and exit codes."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from adrbench.cli import main
from adrbench.results import store
from factories import make_finetune_sts_run

REPO_ADRS = Path(__file__).parents[1] / "adr"
DATA = Path(__file__).parent / "data" / "adr"
# ADRBENCH_UPDATE_GOLDEN=1 rewrites tests/data/adr/check_table.txt (then review the diff).
UPDATE_GOLDEN = os.environ.get("ADRBENCH_UPDATE_GOLDEN") == "1"


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A results directory holding one run shaped like this CPU machine's."""
    directory = tmp_path / "results"
    store.write_run(make_finetune_sts_run(), directory)
    return directory


def check(results_dir: Path, *extra: str, adr_dir: Path = REPO_ADRS) -> int:
    # --results latest: the newest run regardless of environment (no machine fingerprinting);
    # --no-probes: the premise is then unknown, which keeps the output deterministic.
    args = ["check", "--adr-dir", str(adr_dir), "--results-dir", str(results_dir)]
    return main([*args, "--results", "latest", "--no-probes", *extra])


def test_check_prints_every_verdict_and_exits_1_on_a_failed_claim(
    results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN this machine's run (LoRA slower than full) WHEN checked THEN exit 1 and the golden
    # table: ADR-0001's speed claim FAILS, ADR-0002's triggers do not fire, the premise is UNKNOWN
    code = check(results_dir)
    out = capsys.readouterr().out
    golden = DATA / "check_table.txt"
    if UPDATE_GOLDEN:
        golden.write_text(out, encoding="utf-8")
    assert code == 1
    assert out == golden.read_text(encoding="utf-8")


def test_what_if_7b_fires_the_trigger_and_exits_1(
    results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN ADR-0002 alone, which passes as measured WHEN model.parameters=7B is tried
    # THEN the 7B trigger fires and the check exits 1
    assert check(results_dir, "2") == 0
    plain = capsys.readouterr().out
    assert re.search(
        r"  not fired  trigger  model-7b +model.parameters >= 7B +model.parameters = 22.7M\n", plain
    )
    assert re.search(
        r"  not fired  trigger  lora-exceeds-laptop +estimate.lora_peak_bytes > 8GB +"
        r"estimate.lora_peak_bytes = [0-9.]+ MiB\n",
        plain,
    )
    assert check(results_dir, "2", "--what-if", "model.parameters=7B") == 1
    out = capsys.readouterr().out
    assert "What-if: model.parameters = 7B.\n" in out
    assert re.search(
        r"  FIRED      trigger  model-7b +model.parameters >= 7B +"
        r"model.parameters = 7B \(what-if\)\n",
        out,
    )
    # AND the estimate-backed trigger and claim move with it: LoRA's estimated peak passes 8 GB
    assert re.search(
        r"  FIRED      trigger  lora-exceeds-laptop +estimate.lora_peak_bytes > 8GB +"
        r"estimate.lora_peak_bytes = 1[0-9].[0-9]+ GiB\n",
        out,
    )
    assert re.search(r"  FAILS      claim    qlora-saves-little ", out)
    assert out.endswith(
        "1 ADR(s): 2 trigger(s) fired; 2 claim(s) failed; 0 premise(s) stale; 0 inconclusive; "
        "2 unknown — "
        "revisit ADR-0002.\n"
    )


def test_json_output_carries_run_values_and_outcomes(
    results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN --format json WHEN checked THEN the document names the run and each verdict's values
    assert check(results_dir, "ADR-0002", "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run"] == {
        "run_id": "20261128T120000Z-finetune_sts-quick-0001",
        "suite": "finetune_sts",
        "profile": "quick",
        "environment": "cpu-2core-24g",
    }
    assert data["needs_attention"] is False
    (adr,) = data["adrs"]
    assert adr["number"] == 2
    by_id = {v["id"]: v for v in adr["verdicts"]}
    assert by_id["model-7b"] == {
        "kind": "trigger",
        "id": "model-7b",
        "text": "The model to fine-tune reaches 7B parameters",
        "expression": "model.parameters >= 7B",
        "outcome": "not fired",
        "values": {"model.parameters": 22713216.0},
        "reason": None,
        "computed": {},
        "intervals": {},
        "repetitions_to_resolve": None,
    }
    assert by_id["bnb-needs-cuda"]["outcome"] == "unknown"
    assert by_id["bnb-needs-cuda"]["reason"] == (
        "probes.bnb_nf4_on_cpu: probes were not run (--no-probes)"
    )


def test_markdown_output_is_a_table_per_adr(
    results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN --format markdown WHEN checked THEN each ADR is a heading with a GitHub table
    assert check(results_dir, "3", "--format", "markdown") == 0
    out = capsys.readouterr().out
    assert "### ADR-0003 Train with CosineSimilarityLoss [accepted]: all claims hold" in out
    assert "| verdict   | kind    | id" in out
    assert "| `results.full.test_spearman > results.full.test_spearman_before`" in out


def test_a_plain_madr_adr_is_reported_as_no_evidence(
    results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an ADR directory holding only a plain MADR ADR WHEN checked THEN exit 0, "no evidence"
    assert check(results_dir, adr_dir=DATA / "plain") == 0
    out = capsys.readouterr().out
    assert (
        "ADR-0004 Keep ADRs in MADR 4 format [accepted]: no evidence (no claims, revisit "
        "triggers or premises)\n"
    ) in out


def test_a_malformed_what_if_exits_2(results_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN --what-if without '=' WHEN checked THEN exit 2 with the expected shape
    assert check(results_dir, "--what-if", "model.parameters") == 2
    assert capsys.readouterr().err == (
        "adrbench check: error: --what-if 'model.parameters': expected NAME=VALUE, e.g. "
        "--what-if model.parameters=7B\n"
    )


def test_an_unknown_adr_number_exits_2(
    results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an ADR number that does not exist WHEN checked THEN exit 2 listing the numbers
    assert check(results_dir, "9") == 2
    assert capsys.readouterr().err == (
        f"adrbench check: error: '9' is neither an ADR file nor the number of one in {REPO_ADRS} "
        "(numbers: 0001, 0002, 0003, 0004, 0005); "
        f"pass e.g. 2, ADR-0002 or {REPO_ADRS}/0002-....md\n"
    )


def test_check_lints_first_and_exits_2_on_a_broken_adr(
    tmp_path: Path, results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an ADR directory with a broken ADR WHEN checked THEN exit 2 and the problem's line
    adr_dir = tmp_path / "adr"
    adr_dir.mkdir()
    shutil.copy(DATA / "malformed" / "0001-missing-key.md", adr_dir)
    assert check(results_dir, adr_dir=adr_dir) == 2
    assert capsys.readouterr().err == (
        "adrbench check: error: 1 problem in ADRs\n"
        f"{adr_dir}/0001-missing-key.md:5: claims[0]: missing key 'holds_if'\n"
    )


# --- lint ------------------------------------------------------------------------------------


def test_lint_passes_the_project_adrs(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the repository's ADRs WHEN linted THEN exit 0
    assert main(["lint", "--adr-dir", str(REPO_ADRS)]) == 0
    assert capsys.readouterr().out == "5 ADR file(s) OK\n"


def test_lint_reports_every_problem_with_file_and_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN three malformed ADRs WHEN linted THEN exit 1 and all five problems, by file and line
    directory = DATA / "malformed"
    assert main(["lint", "--adr-dir", str(directory)]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(str(directory))]
    assert lines == [
        f"{directory}/0001-missing-key.md:5: claims[0]: missing key 'holds_if'",
        f"{directory}/0002-wrong-type.md:4: evidence: expected a list of suite or suite/scenario "
        "names, got text 'finetune_sts'",
        f"{directory}/0002-wrong-type.md:8: claims[0].holds_if: expected non-empty text, got a "
        "boolean True; quote it",
        f"{directory}/0002-wrong-type.md:9: premises: expected a list of {{id, text, holds_if}} "
        "mappings, got text",
        f"{directory}/0003-bad-yaml.md:7: front matter is not valid YAML: while parsing a block "
        "collection, expected <block end>, but found '<block mapping start>'",
    ]
    assert out.endswith("5 problem(s) in 3 ADR file(s)\n")


def test_lint_of_one_named_adr_reports_only_that_file(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN one ADR named by number WHEN linted THEN only its problems are printed
    directory = DATA / "malformed"
    assert main(["lint", "--adr-dir", str(directory), "1"]) == 1
    assert capsys.readouterr().out == (
        f"{directory}/0001-missing-key.md:5: claims[0]: missing key 'holds_if'\n"
        "1 problem(s) in 1 ADR file(s)\n"
    )


def test_an_inconclusive_claim_is_counted_apart_and_fails_only_a_strict_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN one repetition each, LoRA 2% slower than full (24.9 vs 25.4 samples/s, inside the
    # 9% process noise of a multi-thread run)
    directory = tmp_path / "results"
    run = make_finetune_sts_run(repeats=1, lora_step_time_s=16 / 24.9, full_step_time_s=16 / 25.4)
    store.write_run(run, directory)
    # WHEN checked THEN the speed claim is INCONCLUSIVE with its interval and a power estimate,
    # the summary counts it apart, and a plain check does not fail on it
    assert check(directory, "1") == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "lora-faster" in line)
    assert row.startswith("  INCONCLUSIVE  claim    lora-faster")
    assert "results.lora.samples_per_s - results.full.samples_per_s = -0.5 samples/s [" in row
    assert "(n=1, welch)" in row and "repetitions would resolve a gap of 0.5 samples/s" in row
    assert ": UNCONFIRMED (" in out and "inconclusive" in out.splitlines()[2]
    assert "; 0 claim(s) failed; 0 premise(s) stale; " in out
    # AND --strict exits 1 on it
    assert check(directory, "1", "--strict") == 1
