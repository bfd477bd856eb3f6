from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adrbench.cli import main
from adrbench.engine.scenario import Scenario
from adrbench.errors import ResultsError
from adrbench.gate.baseline import (
    BaselineError,
    baseline_path,
    find_baseline,
    list_baselines,
    load_baseline,
    median_run,
    save_baseline,
)
from adrbench.results.record import RunRecord
from adrbench.results.store import write_run
from factories import make_environment, make_failed, make_ok, make_run, make_skipped

CPU = "cpu-2core-24g"


def test_a_baseline_is_stored_per_environment_suite_and_profile(tmp_path: Path) -> None:
    # GIVEN a clean run on this machine
    run = make_run(environment=make_environment(CPU))
    # WHEN it becomes the baseline
    path = save_baseline(run, tmp_path)
    # THEN it lives under baselines/<environment>/<suite>-<profile>.json and loads back whole
    assert path == tmp_path / "baselines" / CPU / "finetune_sts-quick.json"
    loaded = load_baseline(tmp_path, CPU, "finetune_sts", "quick")
    assert loaded.run == run
    assert loaded.key == f"{CPU}/finetune_sts-quick"


def test_updating_replaces_the_previous_baseline(tmp_path: Path) -> None:
    save_baseline(make_run(run_id="old"), tmp_path)
    save_baseline(make_run(run_id="new"), tmp_path)
    assert [b.run.run_id for b in list_baselines(tmp_path)] == ["new"]


def test_a_run_with_failed_scenarios_cannot_become_a_baseline(tmp_path: Path) -> None:
    run = make_run([make_ok("full"), make_failed("broken")], run_id="r1")
    with pytest.raises(BaselineError) as info:
        save_baseline(run, tmp_path)
    assert str(info.value) == (
        "run r1: scenarios 'broken' failed; a baseline must be a clean run — fix them and rerun "
        "`adrbench run`, then update the baseline"
    )
    assert not (tmp_path / "baselines").exists()


def test_a_run_that_measured_nothing_cannot_become_a_baseline(tmp_path: Path) -> None:
    with pytest.raises(BaselineError) as info:
        save_baseline(make_run([make_skipped("qlora")], run_id="r1"), tmp_path)
    assert str(info.value) == (
        "run r1: no scenario measured anything (all skipped); nothing to use as a baseline on "
        "this machine"
    )


def test_a_missing_baseline_names_the_file_the_other_machines_and_the_fix(tmp_path: Path) -> None:
    # GIVEN baselines for two other machines only
    save_baseline(make_run(environment=make_environment("cuda-a100")), tmp_path)
    save_baseline(make_run(environment=make_environment("mps-m2")), tmp_path)
    # WHEN the gate asks for this machine's
    with pytest.raises(BaselineError) as info:
        load_baseline(tmp_path, CPU, "finetune_sts", "quick")
    # THEN the message says where it looked, what exists and how to record one
    assert str(info.value) == (
        f"{tmp_path}/baselines/{CPU}/finetune_sts-quick.json: no baseline for environment "
        f"{CPU!r} (suite 'finetune_sts', profile 'quick'); baselines exist for: cuda-a100, "
        "mps-m2; record one with `adrbench baseline update` after a clean run on this machine, "
        "and commit it"
    )


def test_a_baseline_in_another_machines_directory_is_refused(tmp_path: Path) -> None:
    # GIVEN a baseline copied by hand into the wrong environment's directory
    source = save_baseline(make_run(environment=make_environment("cuda-a100")), tmp_path)
    wrong = tmp_path / "baselines" / CPU / "finetune_sts-quick.json"
    wrong.parent.mkdir(parents=True)
    shutil.copy(source, wrong)
    with pytest.raises(BaselineError) as info:
        load_baseline(tmp_path, CPU, "finetune_sts", "quick")
    assert str(info.value) == (
        f"{wrong}: holds a run of environment 'cuda-a100' but sits in the directory of "
        f"{CPU!r}; the gate would use it for the wrong machine — record it again with "
        "`adrbench baseline update --run RUN` and delete this file"
    )


def test_a_corrupt_baseline_is_an_error_not_skipped(tmp_path: Path) -> None:
    path = save_baseline(make_run(), tmp_path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ResultsError, match=r"not valid JSON"):
        list_baselines(tmp_path)


def test_an_unsafe_fingerprint_cannot_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(BaselineError) as info:
        baseline_path(tmp_path, "../etc", "finetune_sts", "quick")
    assert str(info.value) == (
        "environment fingerprint '../etc' cannot name a baseline file: it holds '/'; a name is "
        "letters, digits and . _ + -, starting with a letter or digit, at most 128 characters"
    )


def test_find_baseline_by_name_or_path_and_none_for_a_run_id(tmp_path: Path) -> None:
    path = save_baseline(make_run(), tmp_path)
    by_name = find_baseline(f"{CPU}/finetune_sts-quick", tmp_path)
    by_path = find_baseline(str(path), tmp_path)
    assert by_name is not None
    assert by_path is not None
    assert by_name.path == by_path.path == path
    assert find_baseline("20261128T120000Z-finetune_sts-quick-0001", tmp_path) is None


def test_baseline_update_and_show_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run in the results directory
    write_run(make_run(), tmp_path)
    # WHEN it is made the baseline (newest run by default) and listed
    assert main(["baseline", "update", "--results-dir", str(tmp_path)]) == 0
    assert main(["baseline", "show", "--results-dir", str(tmp_path)]) == 0
    # THEN the update says which file to commit and show lists it
    path = tmp_path / "baselines" / CPU / "finetune_sts-quick.json"
    out = capsys.readouterr().out
    assert out == (
        f"baseline {CPU}/finetune_sts-quick <- run 20261128T120000Z-finetune_sts-quick-0001\n"
        f"{path}\n"
        f"commit it: git add {path}\n"
        "baseline                          run                                       "
        "started                   commit  ok scenarios\n"
        "--------------------------------  ----------------------------------------  "
        "--------------------  ----------  --------------\n"
        f"{CPU}/finetune_sts-quick  20261128T120000Z-finetune_sts-quick-0001  "
        "2026-11-28T12:00:00Z  0123456789  2/3\n"
    )


def test_baseline_update_of_a_failed_run_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(make_run([make_failed("broken")], run_id="r1"), tmp_path)
    assert main(["baseline", "update", "--run", "r1", "--results-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "adrbench baseline: error: run r1: scenarios 'broken' failed; a baseline must be a clean "
        "run — fix them and rerun `adrbench run`, then update the baseline\n"
    )


def test_baseline_show_with_none_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["baseline", "show", "--results-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == (
        f"no baselines under {tmp_path}/baselines; run `adrbench baseline update`\n"
    )


def _timed_run(run_id: str, step_time_s: float, env: str = CPU) -> RunRecord:
    return make_run(
        [make_ok("full", step_time_s=step_time_s), make_skipped("qlora")],
        run_id=run_id,
        environment=make_environment(env),
    )


def test_a_baseline_from_several_runs_keeps_the_median_run_per_scenario() -> None:
    # GIVEN three runs of the same code, the second disturbed by other work on the machine
    runs = [_timed_run("a", 0.70), _timed_run("b", 0.95), _timed_run("c", 0.68)]
    # WHEN they become one baseline
    merged = median_run(runs)
    # THEN the middle run's result is the reference, not the disturbed one
    assert merged.scenario("full") == runs[0].scenario("full")
    assert merged.scenario("qlora") == runs[0].scenario("qlora")
    assert merged.run_id == "a+median-of-3"


def _two_scenario_run(run_id: str, full_s: float, lora_s: float) -> RunRecord:
    return make_run(
        [make_ok("full", step_time_s=full_s), make_ok("lora", method="lora", step_time_s=lora_s)],
        run_id=run_id,
    )


def test_the_median_run_is_chosen_per_scenario_and_need_not_be_the_first() -> None:
    # GIVEN three runs whose median differs by scenario: full's is run b, lora's is run c
    runs = [
        _two_scenario_run("a", full_s=0.95, lora_s=0.80),
        _two_scenario_run("b", full_s=0.70, lora_s=0.90),
        _two_scenario_run("c", full_s=0.68, lora_s=0.85),
    ]
    # WHEN they become one baseline
    merged = median_run(runs)
    # THEN each scenario keeps its own median run's result, not the first run's
    assert merged.scenario("full") == runs[1].scenario("full")
    assert merged.scenario("lora") == runs[2].scenario("lora")
    assert merged.run_id == "a+median-of-3"


def test_with_an_even_number_of_runs_the_lower_middle_one_is_kept() -> None:
    # GIVEN four runs (medians 0.9, 0.6, 0.8, 0.7): the middle two are 0.7 (d) and 0.8 (c)
    runs = [
        _two_scenario_run(run_id, full_s=t, lora_s=t)
        for run_id, t in (("a", 0.9), ("b", 0.6), ("c", 0.8), ("d", 0.7))
    ]
    merged = median_run(runs)
    # THEN the lower middle run is the reference (documented in median_run)
    assert merged.scenario("full") == runs[3].scenario("full")


def test_a_scenario_ok_in_only_some_runs_takes_the_median_of_those() -> None:
    # GIVEN full ok in runs b and c only (a failed it); lora ok everywhere
    a = make_run([make_failed("full"), make_ok("lora", method="lora", step_time_s=0.8)], run_id="a")
    b = _two_scenario_run("b", full_s=0.75, lora_s=0.9)
    c = _two_scenario_run("c", full_s=0.70, lora_s=0.85)
    merged = median_run([b, a, c])
    # THEN full's median is the lower middle of its two ok results, lora's the middle of three
    assert merged.scenario("full") == c.scenario("full")
    assert merged.scenario("lora") == c.scenario("lora")


def test_a_scenario_that_failed_in_the_first_run_stays_failed_when_no_run_has_it_ok() -> None:
    a = make_run([make_failed("full")], run_id="a")
    b = make_run([make_failed("full", message="again")], run_id="b")
    assert median_run([a, b]).scenario("full") == a.scenario("full")


def test_runs_of_different_machines_cannot_share_a_baseline() -> None:
    with pytest.raises(BaselineError) as info:
        median_run([_timed_run("a", 0.7), _timed_run("b", 0.7, env="cuda-a100")])
    assert str(info.value) == (
        "run b (cuda-a100/finetune_sts-quick) cannot share a baseline with run a "
        f"({CPU}/finetune_sts-quick); give runs of one machine, suite and profile"
    )


def test_baseline_update_with_several_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for run in (_timed_run("a", 0.70), _timed_run("b", 0.95), _timed_run("c", 0.68)):
        write_run(run, tmp_path)
    args = ["baseline", "update", "--results-dir", str(tmp_path)]
    assert main([*args, "--run", "a", "--run", "b", "--run", "c"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"baseline {CPU}/finetune_sts-quick <- run a+median-of-3"
    )


def test_a_run_with_other_scenario_settings_is_not_a_candidate_for_its_median() -> None:
    # GIVEN three runs where b's "full" ran with other settings (another config fingerprint) and
    # would otherwise be the median (0.70 between 0.68 and 0.95)
    b_full = make_ok("full", step_time_s=0.70, scenario=Scenario(name="full", batch_size=32))
    runs = [
        _two_scenario_run("a", full_s=0.95, lora_s=0.80),
        make_run([b_full, make_ok("lora", method="lora", step_time_s=0.90)], run_id="b"),
        _two_scenario_run("c", full_s=0.68, lora_s=0.85),
    ]
    # WHEN they become one baseline
    merged = median_run(runs)
    # THEN full's reference is the lower middle of the two comparable runs (c), never b's
    assert merged.scenario("full") == runs[2].scenario("full")


def test_a_file_outside_the_baselines_directory_is_not_a_baseline(tmp_path: Path) -> None:
    # GIVEN a run file (a valid results file, but not a baseline) and a stored baseline
    run_file = write_run(make_run(), tmp_path)
    save_baseline(make_run(), tmp_path)
    # WHEN the run file's path is given as the baseline THEN it is not taken for one
    assert find_baseline(str(run_file), tmp_path) is None
    assert find_baseline(str(tmp_path / "baselines" / "nowhere.json"), tmp_path) is None
