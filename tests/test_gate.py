from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from adrbench.engine.scenario import Scenario
from adrbench.gate.rules import (
    DEFAULT_CONFIG,
    GateConfig,
    GateConfigError,
    GateInputError,
    GateReport,
    Row,
    Verdict,
    evaluate,
    load_config,
    parse_config,
)
from adrbench.results.record import RunRecord, ScenarioResult
from factories import make_environment, make_failed, make_ok, make_run, make_skipped

ROOT = Path(__file__).resolve().parent.parent
# Step times vary with the batch (longer sentences, longer steps); pairing by index cancels that.
BASE_TIMES = tuple(0.5 + 0.1 * (i % 5) for i in range(20))  # median 0.7 s


def timed(
    name: str = "full",
    times: Sequence[float] = BASE_TIMES,
    *,
    flops: float = 1.0e11,
    peak_rss_bytes: int = 1_700_000_000,
    test_spearman: float = 0.85,
    scenario: Scenario | None = None,
) -> ScenarioResult:
    """An ``ok`` full fine-tuning result with exact step times and calibration kernel speed."""
    result = make_ok(
        name,
        method="full",
        step_times_s=times,
        peak_rss_bytes=peak_rss_bytes,
        anon_rss_bytes=peak_rss_bytes,  # one value: the memory rule sees exactly this change
        test_spearman=test_spearman,
        scenario=scenario,
    )
    assert result.metrics is not None
    compute = replace(result.metrics.compute, matmul_peak_flops_per_s=flops)
    return replace(result, metrics=replace(result.metrics, compute=compute))


def scaled(factor: float, times: Sequence[float] = BASE_TIMES) -> tuple[float, ...]:
    return tuple(t * factor for t in times)


def run_of(*results: ScenarioResult, run_id: str = "cur", env: str = "cpu-2core-24g") -> RunRecord:
    return make_run(list(results), run_id=run_id, environment=make_environment(env))


def gate(
    baseline: Sequence[ScenarioResult],
    current: Sequence[ScenarioResult],
    config: GateConfig = DEFAULT_CONFIG,
) -> GateReport:
    return evaluate(
        run_of(*baseline, run_id="base"),
        run_of(*current, run_id="cur"),
        config,
        baseline_source="results/baselines/cpu-2core-24g/finetune_sts-quick.json",
    )


def row(report: GateReport, metric: str, scenario: str = "full") -> Row:
    return next(r for r in report.rows if r.metric == metric and r.scenario == scenario)


# --- the acceptance cases ------------------------------------------------------------------


def test_a_time_regression_fails_with_scenario_metric_value_and_threshold() -> None:
    # GIVEN every step of the current run 20% slower on the same batches, same machine speed
    report = gate([timed()], [timed(times=scaled(1.2))])
    # THEN the step-time rule fails, and only it
    assert [r.message for r in report.failures] == [
        "full: step_time_s rose +20.0% (0.7 s -> 0.84 s median step), beyond the +8.0% "
        "allowed and significant (p < 0.0001, alpha 0.01)"
    ]
    time_row = row(report, "step_time_s")
    assert (time_row.change, time_row.threshold, time_row.verdict) == (
        "+20.0%",
        "+8.0%",
        Verdict.REGRESSION,
    )


def test_a_memory_regression_fails() -> None:
    report = gate([timed()], [timed(peak_rss_bytes=1_870_000_000)])
    assert [r.message for r in report.failures] == [
        "full: train_peak_anon_rss_bytes rose +10.0% (1.58 GiB -> 1.74 GiB), beyond the 5.0% "
        "allowed and significant (p < 0.0001, alpha 0.01)"
    ]


def test_an_accuracy_drop_with_a_speed_gain_fails_the_joint_rule() -> None:
    # GIVEN a run 30% faster that loses 0.05 Spearman
    report = gate([timed()], [timed(times=scaled(0.7), test_spearman=0.80)])
    # THEN both the accuracy rule and the joint speed/accuracy rule fail; the speed gain is an
    # improvement, not a pass ticket
    assert [r.message for r in report.failures] == [
        "full: test_spearman fell 0.0500 (0.8500 -> 0.8000), beyond the 0.0100 allowed",
        "full: step time changed -30.0% (faster) but test_spearman fell 0.0500 (0.8500 -> "
        "0.8000), more than the 0.0100 allowed for a faster run; speed may not be bought with "
        "accuracy",
    ]
    assert row(report, "step_time_s").verdict is Verdict.IMPROVEMENT


def test_a_speed_gain_within_the_accuracy_allowance_passes() -> None:
    report = gate([timed()], [timed(times=scaled(0.7), test_spearman=0.845)])
    assert report.passed
    assert row(report, "step_time_s+test_spearman").verdict is Verdict.PASS


def test_a_significant_but_small_change_passes() -> None:
    # GIVEN a machine whose processes agree to 0.5% (tighter than the default 2% / 1.5%, so that
    # a small change can be significant at all), and +4% time and +3% memory with no noise
    config = _parse(
        [
            {"kind": "step_time", "max_increase": "8%", "process_cv": "0.5%"},
            {"kind": "ratio", "metric": "peak_rss_bytes", "max_change": "5%", "process_cv": "0.5%"},
        ]
    )
    report = gate([timed()], [timed(times=scaled(1.04), peak_rss_bytes=1_751_000_000)], config)
    # THEN both changes are certainly real (p < 0.0001) but under their thresholds: pass
    assert report.passed
    assert [(r.metric, r.change, r.threshold, r.verdict) for r in report.rows] == [
        ("step_time_s", "+4.0%", "+8.0%", Verdict.PASS),
        ("peak_rss_bytes", "+3.0%", "+5.0%", Verdict.PASS),
    ]
    assert all(r.p_value is not None and r.p_value < 1e-4 for r in report.rows)


def test_a_large_change_hidden_in_noise_passes() -> None:
    # GIVEN +12% on the median but steps so noisy (the paired ratios scatter by ±40%) that the
    # change is not distinguishable from noise
    noisy = tuple(t * (1.12 * (1.5 if i % 2 else 0.7)) for i, t in enumerate(BASE_TIMES))
    report = gate([timed()], [timed(times=noisy)])
    time_row = row(report, "step_time_s")
    assert time_row.verdict is Verdict.PASS
    assert time_row.p_value is not None
    assert time_row.p_value > 0.01


def test_a_slower_machine_is_not_a_regression_when_normalised_by_the_kernel() -> None:
    # GIVEN a process that ran 20% slower at everything, the matmul calibration kernel included
    report = gate([timed()], [timed(times=scaled(1.2), flops=1.0e11 / 1.2)])
    # THEN the normalised step time did not change
    assert report.passed
    assert row(report, "step_time_s").change == "+0.0%"


def test_another_environment_is_refused_with_the_fix() -> None:
    baseline = run_of(timed(), run_id="base", env="cuda-a100")
    current = run_of(timed(), run_id="cur", env="cpu-2core-24g")
    with pytest.raises(GateInputError) as info:
        evaluate(baseline, current, DEFAULT_CONFIG, baseline_source="b.json")
    assert str(info.value) == (
        "b.json: baseline run base was measured on environment 'cuda-a100' but current run cur "
        "on 'cpu-2core-24g'; timings from different machines are not comparable — record a "
        "baseline for this machine with `adrbench baseline update --run cur` (and commit it), "
        "or pass --force"
    )


def test_force_compares_across_environments_and_says_so() -> None:
    baseline = run_of(timed(), run_id="base", env="cuda-a100")
    current = run_of(timed(), run_id="cur", env="cpu-2core-24g")
    report = evaluate(baseline, current, DEFAULT_CONFIG, baseline_source="b.json", force=True)
    assert report.forced
    assert report.passed


def test_another_profile_is_refused() -> None:
    baseline = replace(run_of(timed(), run_id="base"), profile="full")
    with pytest.raises(GateInputError) as info:
        evaluate(baseline, run_of(timed()), DEFAULT_CONFIG, baseline_source="b.json")
    assert str(info.value) == (
        "b.json: baseline run base is suite 'finetune_sts' profile 'full' but current run cur is "
        "suite 'finetune_sts' profile 'quick'; compare runs of the same suite and profile, or "
        "pass --force"
    )


# --- scenario-level rows -------------------------------------------------------------------


def test_a_changed_benchmark_is_not_comparable_and_does_not_fail() -> None:
    changed = Scenario(name="full", method="full", batch_size=32)
    report = gate([timed()], [timed(times=scaled(2.0), scenario=changed)])
    assert report.passed
    (only,) = report.rows
    assert only.verdict is Verdict.NOT_COMPARABLE
    assert only.message == (
        f"full: the benchmark definition changed (fingerprint "
        f"{Scenario(name='full', method='full').fingerprint()} -> {changed.fingerprint()}); not "
        "compared — update the baseline (adrbench baseline update)"
    )


def test_injection_knobs_do_not_change_comparability() -> None:
    injected = Scenario(name="full", method="full", extra_step_work=0.15, ballast_mb=170)
    report = gate([timed()], [timed(times=scaled(1.15), scenario=injected)])
    assert row(report, "step_time_s").verdict is Verdict.REGRESSION


def test_a_scenario_that_now_fails_fails_the_gate() -> None:
    report = gate([timed(), timed("broken")], [timed(), make_failed("broken", message="boom")])
    assert [r.message for r in report.failures] == [
        "broken: failed in current run cur (RuntimeError: boom); it was ok in the baseline"
    ]


def test_a_scenario_missing_from_the_current_run_fails_the_gate() -> None:
    report = gate([timed(), timed("lora")], [timed()])
    assert [r.message for r in report.failures] == [
        "lora: in the baseline but not in current run cur; run the whole suite, or update the "
        "baseline if the scenario was removed on purpose"
    ]


def test_skipped_in_both_and_new_scenarios_do_not_fail() -> None:
    report = gate([timed(), make_skipped("qlora")], [timed(), make_skipped("qlora"), timed("x")])
    assert report.passed
    assert [(r.scenario, r.verdict) for r in report.rows if r.metric == "—"] == [
        ("qlora", Verdict.SKIPPED),
        ("x", Verdict.NEW),
    ]


def test_a_scenario_skipped_now_but_measured_before_fails() -> None:
    report = gate([timed("qlora")], [make_skipped("qlora")])
    # a skipped qlora has another scenario definition (method qlora), so it is not comparable
    assert report.rows[0].verdict is Verdict.NOT_COMPARABLE
    same = make_skipped("full")
    report = gate([timed(scenario=same.scenario)], [same])
    assert [r.message for r in report.failures] == [
        "full: skipped in current run cur (cuda_unavailable: QLoRA needs CUDA; this machine's "
        "device is cpu.) but measured in the baseline"
    ]


def test_all_failures_are_collected_in_one_report() -> None:
    report = gate(
        [timed(), timed("lora")],
        [timed(times=scaled(1.3)), timed("lora", peak_rss_bytes=2_000_000_000)],
    )
    assert [(r.scenario, r.metric) for r in report.failures] == [
        ("full", "step_time_s"),
        ("lora", "train_peak_anon_rss_bytes"),
    ]
    assert len(report.rows) == 8  # 4 rules x 2 scenarios


# --- configuration -------------------------------------------------------------------------


def test_the_documented_pyproject_section_is_the_built_in_default() -> None:
    config = load_config(ROOT / "pyproject.toml")
    assert config.rules == DEFAULT_CONFIG.rules
    assert config.alpha == DEFAULT_CONFIG.alpha


def test_a_pyproject_without_a_gate_section_uses_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n', encoding="utf-8")
    assert load_config(path) is DEFAULT_CONFIG


def _parse(rules: list[dict[str, Any]], **top: Any) -> GateConfig:
    return parse_config({"rules": rules, **top}, "pyproject.toml")


def test_percentages_and_fractions_are_both_accepted() -> None:
    config = _parse(
        [{"kind": "ratio", "metric": "peak_rss_bytes", "max_change": "10%"}],
        alpha=0.002,
    )
    rule = config.rules[0]
    assert (
        rule.describe() == "peak_rss_bytes: fails on a rise beyond 10.0% with p < 0.002 "
        "(process cv 0.0%)"
    )


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            [{"kind": "ratio", "metric": "peak_rss_bytes", "max_chnage": "5%"}],
            "pyproject.toml: [[tool.adrbench.gate.rules]] #1 (kind 'ratio'): unknown key "
            "'max_chnage'; did you mean 'max_change'?",
        ),
        (
            [{"kind": "speed"}],
            "pyproject.toml: [[tool.adrbench.gate.rules]] #1: kind='speed' is not a rule kind; "
            "choose one of 'step_time', 'ratio', 'delta', 'joint'",
        ),
        (
            [{"kind": "ratio", "metric": "peak_rss", "max_change": "5%"}],
            "pyproject.toml: [[tool.adrbench.gate.rules]] #1 (kind 'ratio'): metric='peak_rss' "
            "is not a known metric; did you mean 'peak_rss_bytes'?",
        ),
        (
            [{"kind": "ratio", "metric": "peak_rss_bytes", "max_change": "five"}],
            "pyproject.toml: [[tool.adrbench.gate.rules]] #1 (kind 'ratio'): "
            "max_change='five': not a number: 'five'",
        ),
        (
            [{"kind": "ratio", "metric": "total_parameters", "max_change": "5%"}],
            "pyproject.toml: [[tool.adrbench.gate.rules]] #1 (kind 'ratio'): metric "
            "'total_parameters' has no better direction in the catalogue; add direction = "
            '"lower_is_better" or "higher_is_better"',
        ),
        (
            [{"kind": "step_time"}],
            "pyproject.toml: [[tool.adrbench.gate.rules]] #1 (kind 'step_time'): missing "
            "'max_increase', e.g. max_increase = \"8%\"",
        ),
        (
            [],
            "pyproject.toml: [tool.adrbench.gate]: no rules; add [[tool.adrbench.gate.rules]] "
            "tables (see docs/reference/gate-rules.md)",
        ),
    ],
)
def test_config_errors_name_the_rule_the_key_and_the_fix(
    rules: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(GateConfigError) as info:
        _parse(rules)
    assert str(info.value) == message


def test_an_unknown_top_level_key_is_refused() -> None:
    with pytest.raises(GateConfigError) as info:
        _parse([{"kind": "step_time", "max_increase": "8%"}], alpah=0.01)
    assert str(info.value) == (
        "pyproject.toml: [tool.adrbench.gate]: unknown key 'alpah'; did you mean 'alpha'?"
    )


def test_invalid_toml_is_reported_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.adrbench.gate\n", encoding="utf-8")
    with pytest.raises(GateConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: not valid TOML (Expected ']' at the end of a table declaration (at line 1, "
        "column 20))"
    )


# --- properties ----------------------------------------------------------------------------

factors = st.floats(min_value=0.5, max_value=2.0, allow_nan=False)
noise = st.lists(st.floats(min_value=-0.3, max_value=0.3), min_size=20, max_size=20)


def _verdicts(report: GateReport) -> list[tuple[str, Verdict]]:
    return [(r.metric, r.verdict) for r in report.rows]


@given(factors, factors, st.floats(min_value=0.01, max_value=100.0), noise)
def test_scaling_both_runs_by_one_factor_never_changes_a_verdict(
    time_factor: float, memory_factor: float, scale: float, wobble: list[float]
) -> None:
    # GIVEN any pair of runs, and the same pair measured in other units / on a uniformly
    # slower machine (times, kernel time and memory all scaled together); a memory change of
    # exactly the threshold is left out: rounding bytes to integers may put it on either side
    assume(abs(abs(memory_factor - 1.0) - 0.05) > 1e-6)
    cur_times = tuple(
        t * time_factor * math.exp(w) for t, w in zip(BASE_TIMES, wobble, strict=True)
    )
    cur_rss = int(1_700_000_000 * memory_factor)

    def pair(s: float) -> GateReport:
        return gate(
            [timed(times=scaled(s), flops=1e11 / s, peak_rss_bytes=int(1_700_000_000 * s))],
            [timed(times=scaled(s, cur_times), flops=1e11 / s, peak_rss_bytes=int(cur_rss * s))],
        )

    # THEN every verdict is the same
    assert _verdicts(pair(scale)) == _verdicts(pair(1.0))


@given(st.floats(min_value=1.0, max_value=3.0), noise)
def test_swapping_runs_never_turns_a_regression_into_a_regression_the_other_way(
    factor: float, wobble: list[float]
) -> None:
    slow = tuple(t * factor * math.exp(w) for t, w in zip(BASE_TIMES, wobble, strict=True))
    forward = row(gate([timed()], [timed(times=slow)]), "step_time_s")
    backward = row(gate([timed(times=slow)], [timed()]), "step_time_s")
    if forward.verdict is Verdict.REGRESSION:
        assert backward.verdict is Verdict.IMPROVEMENT
    assert backward.verdict is not Verdict.REGRESSION or forward.verdict is Verdict.IMPROVEMENT


@given(st.floats(min_value=0.5, max_value=2.0), st.floats(min_value=0.0, max_value=1.0))
def test_a_bigger_slowdown_never_passes_where_a_smaller_one_failed(
    factor: float, extra: float
) -> None:
    smaller = row(gate([timed()], [timed(times=scaled(factor))]), "step_time_s")
    bigger = row(gate([timed()], [timed(times=scaled(factor + extra))]), "step_time_s")
    if smaller.verdict is Verdict.REGRESSION:
        assert bigger.verdict is Verdict.REGRESSION


def test_gate_verdict_words_are_the_ones_the_table_prints() -> None:
    # upper case is what fails the gate; the table and CI logs are read by these words
    assert [v.value for v in Verdict] == [
        "pass",
        "REGRESSION",
        "improvement",
        "FAILED",
        "MISSING",
        "not comparable",
        "not measured",
        "skipped",
        "new",
    ]
