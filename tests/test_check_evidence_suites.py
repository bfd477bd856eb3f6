"""``adrbench check`` judges each ADR on the runs of the suites its ``evidence`` names, no other."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from adrbench import machine
from adrbench.cli import main
from adrbench.decisions.evidence import MissingEvidence, adr_runs, evidence_runs
from adrbench.engine import environment
from adrbench.results import store
from adrbench.results.record import Environment
from factories import make_environment, make_finetune_sts_run, make_ok, make_run

THIS = make_environment("this-machine")
CUDA = make_environment("cuda-box", device_kind="cuda", device_name="H200", cuda_available=True)

# An ADR whose evidence is another suite, with a trigger any CUDA run would fire.
OTHER_ADR = """---
status: accepted
evidence: [other_suite]
claims:
  - id: fast-is-fast
    text: The fast scenario trains
    holds_if: results.fast.samples_per_s > 0
revisit_when:
  - id: cuda
    text: A CUDA machine
    fires_if: env.cuda_available
---

# Train the other way
"""

# An ADR whose evidence is finetune_sts, with the same trigger.
STS_ADR = """---
status: accepted
evidence: [finetune_sts/full]
revisit_when:
  - id: cuda
    text: A CUDA machine
    fires_if: env.cuda_available
---

# Fine-tune all the weights
"""


@pytest.fixture(autouse=True)
def this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine is ``this-machine`` (no torch import, no real fingerprint)."""

    def capture() -> Environment:
        return THIS

    monkeypatch.setattr(environment, "capture_environment", capture)
    monkeypatch.setattr(machine, "this_environment", capture)


def _adrs(tmp_path: Path, *texts: str) -> Path:
    directory = tmp_path / "adr"
    directory.mkdir()
    names = ("0001-other.md", "0002-sts.md")
    for name, text in zip(names, texts, strict=False):
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def _results(
    tmp_path: Path, *, sts: tuple[Environment, ...], other: tuple[Environment, ...]
) -> Path:
    directory = tmp_path / "results"
    for index, env in enumerate(sts):
        run_id = f"20261128T12000{index}Z-finetune_sts-full-000{index}"
        store.write_run(make_finetune_sts_run(run_id=run_id, environment=env), directory)
    for index, env in enumerate(other):
        run = make_run(
            [make_ok("fast", method="full")],
            run_id=f"20261128T13000{index}Z-other_suite-quick-000{index}",
            suite="other_suite",
            environment=env,
            started_at=f"2026-11-28T13:00:0{index}Z",
        )
        store.write_run(run, directory)
    return directory


def check(adr_dir: Path, results_dir: Path, *extra: str) -> int:
    args = ["check", "--adr-dir", str(adr_dir), "--results-dir", str(results_dir)]
    return main([*args, "--no-probes", *extra])


def test_an_adr_of_another_suite_is_not_judged_on_a_finetune_sts_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an ADR with evidence [other_suite] and a CUDA machine with only a finetune_sts run
    adrs = _adrs(tmp_path, OTHER_ADR, STS_ADR)
    results = _results(tmp_path, sts=(CUDA,), other=())
    # WHEN checked
    code = check(adrs, results)
    out = capsys.readouterr().out
    # THEN the finetune_sts ADR's CUDA trigger fires, but the other ADR is not judged there: one
    # line says which suite has no run where and how to make one, and it is not in the revisit list
    assert code == 1
    assert "ADR-0001 Train the other way [accepted]" not in out
    assert (
        "ADR-0001 Train the other way: not judged; no run of suite other_suite on environment "
        "cuda-box: run `adrbench run bench/other_suite.toml`.\n"
    ) in out
    assert "1 ADR(s): 1 trigger(s) fired" in out
    closing = out.splitlines()[-2]
    assert closing == (
        "1 environment(s) judged; revisit ADR-0002 on cuda-box; not judged (no run of their "
        "suites): ADR-0001 on cuda-box."
    )


def test_an_adr_of_another_suite_alone_never_fires_on_a_finetune_sts_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN only the other-suite ADR, and finetune_sts runs of a CUDA machine and of this one
    adrs = _adrs(tmp_path, OTHER_ADR)
    results = _results(tmp_path, sts=(CUDA, THIS), other=())
    # WHEN checked THEN nothing is judged: no evidence anywhere for it (exit 3), naming the suite
    assert check(adrs, results) == 3
    assert capsys.readouterr().out == (
        f"No evidence anywhere: {results / 'runs'} holds no run of suite other_suite, so no ADR "
        "judged here can be judged. Run `adrbench run bench/other_suite.toml` here, or "
        "`adrbench import FILE` a run made elsewhere.\n"
    )


def test_an_adr_whose_suite_has_a_run_is_judged_on_that_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN both ADRs, and a CUDA machine with a run of each suite
    adrs = _adrs(tmp_path, OTHER_ADR, STS_ADR)
    results = _results(tmp_path, sts=(CUDA,), other=(CUDA,))
    # WHEN checked
    assert check(adrs, results) == 1
    out = capsys.readouterr().out
    # THEN each ADR is judged on its own suite's run, in one environment block
    sts_part, other_part = out.split("Judged against run 20261128T130000Z-other_suite-quick-0000")
    assert "Judged against run 20261128T120000Z-finetune_sts-full-0000 (suite finetune_sts" in (
        sts_part
    )
    assert "ADR-0002 Fine-tune all the weights [accepted]: REVISIT" in sts_part
    assert "ADR-0001" not in sts_part
    assert "ADR-0001 Train the other way [accepted]: REVISIT (trigger cuda fired)" in other_part
    assert re.search(
        r"\n  holds +claim +fast-is-fast +results\.fast\.samples_per_s > 0 ", other_part
    )
    assert "ADR-0002" not in other_part.split("\n\n1 environment(s)")[0]
    assert "revisit ADR-0001 on cuda-box, ADR-0002 on cuda-box." in other_part
    assert out.count("Environment cuda-box: cuda, H200") == 1
    assert "not judged" not in out


def test_json_lists_the_adrs_not_judged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    adrs = _adrs(tmp_path, OTHER_ADR, STS_ADR)
    results = _results(tmp_path, sts=(CUDA,), other=())
    check(adrs, results, "--format", "json")
    data = json.loads(capsys.readouterr().out)
    assert [a["number"] for e in data["environments"] for a in e["adrs"]] == [2]
    assert [(m["number"], m["suites"], m["environment"]) for m in data["not_judged"]] == [
        (1, ["other_suite"], "cuda-box")
    ]


def test_results_naming_a_run_of_another_suite_judges_only_the_adrs_of_that_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN --results naming the finetune_sts run WHEN checked THEN the other ADR is not judged
    adrs = _adrs(tmp_path, OTHER_ADR, STS_ADR)
    results = _results(tmp_path, sts=(CUDA,), other=(CUDA,))
    assert check(adrs, results, "--results", "20261128T120000Z-finetune_sts-full-0000") == 1
    out = capsys.readouterr().out
    assert "ADR-0001 Train the other way [accepted]" not in out
    assert (
        "ADR-0001 Train the other way: not judged; run 20261128T120000Z-finetune_sts-full-0000 "
        "is not of suite other_suite: pass --results a run of suite other_suite, or run "
        "`adrbench run bench/other_suite.toml`.\n"
    ) in out


def test_an_adr_naming_two_suites_is_judged_on_the_one_with_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an ADR naming finetune_sts and other_suite, and only a finetune_sts run
    both = OTHER_ADR.replace("[other_suite]", "[finetune_sts/full, other_suite]")
    adrs = _adrs(tmp_path, both)
    results = _results(tmp_path, sts=(THIS,), other=())
    # WHEN checked THEN it is judged on that run, and the missing suite is named
    check(adrs, results)
    out = capsys.readouterr().out
    assert "ADR-0001 Train the other way [accepted]: UNCONFIRMED (1 unknown)" in out
    assert (
        "ADR-0001 Train the other way: judged on its other suites only; no run of suite "
        "other_suite on environment this-machine: run `adrbench run bench/other_suite.toml`.\n"
    ) in out
    assert "not judged (no run" not in out


# An ADR comparing scenarios of two suites: judged on the union of their runs.
BOTH_ADR = """---
status: accepted
evidence: [finetune_sts/full, other_suite/fast]
claims:
  - id: fast-beats-full
    text: The fast scenario trains faster than full fine-tuning
    holds_if: results.fast.samples_per_s > results.full.samples_per_s / 2
---

# Train the fast way
"""


def test_an_adr_naming_two_suites_is_judged_once_on_the_union_of_their_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an ADR comparing a finetune_sts scenario with an other_suite one, and a run of each
    adrs = _adrs(tmp_path, BOTH_ADR)
    results = _results(tmp_path, sts=(THIS,), other=(THIS,))
    # WHEN checked
    assert check(adrs, results) == 0
    out = capsys.readouterr().out
    # THEN it is judged once, on both runs together, and the claim across suites is decided
    assert out.count("ADR-0001 Train the fast way [accepted]") == 1
    assert (
        "Judged against run 20261128T120000Z-finetune_sts-full-0000 (suite finetune_sts, profile "
        "quick) and run 20261128T130000Z-other_suite-quick-0000 (suite other_suite, profile quick) "
        "together (environment this-machine, cpu; env.* and model.* from the first).\n"
    ) in out
    assert "ADR-0001 Train the fast way [accepted]: all claims hold, no trigger fired" in out
    assert "Evidence (suite finetune_sts): " in out and "Evidence (suite other_suite): " in out


def test_a_scenario_in_two_of_an_adrs_suites_is_an_error_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN other_suite's run also has a scenario called "full"
    adrs = _adrs(tmp_path, BOTH_ADR)
    results = _results(tmp_path, sts=(THIS,), other=())
    clash = make_run(
        [make_ok("fast"), make_ok("full")],
        run_id="20261128T130000Z-other_suite-quick-0000",
        suite="other_suite",
        environment=THIS,
    )
    store.write_run(clash, results)
    # WHEN checked THEN bad input (exit 2), naming the ADR, the scenario, both suites and runs
    assert check(adrs, results) == 2
    err = capsys.readouterr().err
    assert "ADR-0001 (" in err and "0001-other.md): scenario 'full' is in both suite " in err
    assert (
        "suite finetune_sts (run 20261128T120000Z-finetune_sts-full-0000) and suite other_suite "
        "(run 20261128T130000Z-other_suite-quick-0000), so results.full.* would be ambiguous; "
        "rename it in one of bench/finetune_sts.toml and bench/other_suite.toml"
    ) in " ".join(err.split())


def test_the_report_judges_an_adr_of_two_suites_on_their_union_too(tmp_path: Path) -> None:
    # GIVEN the same ADR and runs WHEN judged for the report THEN both runs are its columns, and
    # each is judged on the union (the claim across suites holds, as in check)
    from adrbench.reports.render import judge_for_report

    adrs = _adrs(tmp_path, BOTH_ADR)
    results = _results(tmp_path, sts=(THIS,), other=(THIS,))
    (judged,) = judge_for_report(adrs, results, probes=False)
    assert [run.suite for run, _ in judged.runs] == ["finetune_sts", "other_suite"]
    assert [v.outcome.value for _, adr in judged.runs for v in adr.verdicts] == ["holds", "holds"]
    assert [v.outcome.value for v in judged.verdicts.verdicts] == ["holds"]


# --- the selection both check and report use ---------------------------------------------------


def test_evidence_runs_pick_each_suites_full_run_per_environment(tmp_path: Path) -> None:
    # GIVEN a full and a newer quick finetune_sts run here, and another suite's run
    full = make_finetune_sts_run(run_id="20261128T100000Z-finetune_sts-full-0001")
    store.write_run(replace(full, profile="full"), tmp_path)
    store.write_run(
        make_finetune_sts_run(run_id="20261128T110000Z-finetune_sts-quick-0001"), tmp_path
    )
    other = make_run(
        [make_ok("fast")], run_id="20261128T090000Z-other_suite-quick-0001", suite="other_suite"
    )
    store.write_run(other, tmp_path)
    # WHEN selected THEN one run per suite and environment, the full profile's, sorted by suite
    runs = evidence_runs(tmp_path, ["other_suite", "finetune_sts"])
    assert [r.run_id for r in runs] == [
        "20261128T100000Z-finetune_sts-full-0001",
        "20261128T090000Z-other_suite-quick-0001",
    ]
    # AND an ADR gets only the runs of the suites it names
    assert [r.suite for r in adr_runs(["other_suite"], runs)] == ["other_suite"]
    assert [r.suite for r in adr_runs(["finetune_sts/lora"], runs)] == ["finetune_sts"]
    assert adr_runs(["speed_levers"], runs) == ()


def test_a_missing_evidence_line_names_every_suite_and_its_command() -> None:
    missing = MissingEvidence(5, "Speed levers", ("a", "b"), "0452bd")
    assert missing.line() == (
        "ADR-0005 Speed levers: not judged; no run of suites a, b on environment 0452bd: run "
        "`adrbench run bench/a.toml` and `adrbench run bench/b.toml`"
    )
