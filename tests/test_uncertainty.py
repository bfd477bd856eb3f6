"""Verdicts that carry their uncertainty: estimates across repetitions, three-way comparisons,
the power estimate, n = 1, exact facts, and the schema-2 migration."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adrbench.decisions.expressions import Missing, Value, evaluate, parse
from adrbench.engine.scenario import Scenario
from adrbench.engine.suite import load_suite
from adrbench.results.record import run_from_json, run_to_json
from adrbench.results.store import load_run
from adrbench.stats import Estimate, combine, compare, estimate, repetitions_to_resolve
from factories import MEASURED, make_finetune_sts_run

REPO = Path(__file__).resolve().parents[1]


def normal_samples(mean: float, sd: float, n: int, seed: int = 7) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    return [(42 + i, rng.gauss(mean, sd)) for i in range(n)]


def judge(source: str, facts: dict[str, Value | Missing]) -> str:
    result = evaluate(parse(source), facts.get)
    if result.inconclusive:
        return "inconclusive"
    if result.value is None:
        return "unknown"
    return "holds" if result.value else "fails"


# --- synthetic repetitions with known distributions ----------------------------------------


def test_t_interval_matches_the_textbook_formula() -> None:
    # GIVEN values 10, 11, 12 WHEN estimated THEN mean 11, SD 1, half-width t(0.975, 2) / sqrt(3)
    e = estimate([(1, 10.0), (2, 11.0), (3, 12.0)])
    assert (e.mean, e.n, e.method) == (11.0, 3, "t")
    assert e.sd == pytest.approx(1.0)
    assert e.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(95.0, "holds"), (105.0, "fails"), (100.0, "inconclusive")],
)
def test_a_comparison_holds_fails_or_is_inconclusive_by_where_the_interval_lies(
    threshold: float, expected: str
) -> None:
    # GIVEN 10 repetitions drawn from N(100, 2^2) (a 95% interval about 100 +- 1.4)
    facts: dict[str, Value | Missing] = {"x.speed": estimate(normal_samples(100.0, 2.0, 10))}
    # WHEN compared with a threshold clear below, clear above, or inside the interval
    # THEN it holds, fails, or is inconclusive
    assert judge(f"x.speed > {threshold}", facts) == expected


def test_paired_ratio_cancels_a_seed_effect_shared_by_both_sides() -> None:
    # GIVEN two methods whose scores move together with the seed (seed effect SD 0.02) and whose
    # ratio is always 0.98 to 0.99
    seeds = normal_samples(0.85, 0.02, 5, seed=3)
    full = estimate(seeds)
    lora = estimate([(s, v * (0.985 + 0.002 * (i % 3 - 1))) for i, (s, v) in enumerate(seeds)])
    facts: dict[str, Value | Missing] = {"r.lora": lora, "r.full": full}
    # WHEN the ratio is judged against 96% THEN pairing by seed resolves it (unpaired it could not)
    result = evaluate(parse("r.lora / r.full >= 96%"), facts.get)
    assert result.value is True
    ratio = result.intervals["r.lora / r.full"]
    assert ratio.method == "paired-log-t"
    assert 0.98 < ratio.low < ratio.high < 0.99
    unpaired = combine("/", dataclasses.replace(lora, samples=()), full)
    assert isinstance(unpaired, Estimate) and unpaired.low < 0.96  # Welch cannot see the pairing


def test_an_uncertain_trigger_is_inconclusive_and_logic_stays_kleene() -> None:
    # GIVEN one decided and one inconclusive comparison
    facts: dict[str, Value | Missing] = {"x.speed": estimate(normal_samples(100.0, 2.0, 10))}
    # THEN false decides an 'and', true decides an 'or', otherwise inconclusive
    assert judge("x.speed > 100 and x.speed > 200", facts) == "fails"
    assert judge("x.speed > 100 or x.speed > 50", facts) == "holds"
    assert judge("x.speed > 100 and x.speed > 50", facts) == "inconclusive"
    assert judge("not x.speed > 100", facts) == "inconclusive"


@settings(max_examples=60, deadline=None)
@given(
    # quarters: exact in binary, so a repeated value set has exactly the same mean
    values=st.lists(st.integers(-4000, 4000).map(lambda i: i / 4), min_size=2, max_size=8),
    copies=st.integers(min_value=2, max_value=5),
    threshold=st.integers(-4000, 4000).map(lambda i: i / 4),
    op=st.sampled_from(["<", "<=", ">", ">="]),
)
def test_more_repetitions_from_the_same_distribution_never_turn_holds_into_fails(
    values: list[float], copies: int, threshold: float, op: str
) -> None:
    # GIVEN a verdict on n repetitions WHEN the same observed distribution is sampled again
    # (every value repeated: same mean, smaller standard error, smaller t quantile)
    # THEN a decided verdict stays decided the same way; only inconclusive can change
    before = compare(op, estimate(list(enumerate(values))), threshold)
    more = estimate(list(enumerate(values * copies)))
    after = compare(op, more, threshold)
    if before is not None:
        assert after is before


# --- n = 1 -----------------------------------------------------------------------------------


def test_n1_of_a_noisy_metric_is_judged_against_its_process_noise() -> None:
    # GIVEN this machine's full-profile numbers measured once: 24.9 vs 25.4 samples/s at the
    # torch default threads (process noise 9%)
    run = make_finetune_sts_run(repeats=1, lora_step_time_s=16 / 24.9, full_step_time_s=16 / 25.4)
    from adrbench.decisions.facts import build_facts

    facts = build_facts(run, probes=False)
    # WHEN the 2% gap is judged THEN it is inconclusive, not "fails"
    result = evaluate(
        parse("results.lora.samples_per_s > results.full.samples_per_s"), facts.lookup
    )
    assert result.inconclusive
    # AND a gap far beyond the noise is still decided at n = 1
    assert judge("x > 20", {"x": estimate([(42, 25.4)], prior_sd=0.09 * 25.4)}) == "holds"


@pytest.mark.parametrize(
    ("source", "noisy"),
    [
        ("train_peak_rss", True),
        ("process_peak_rss", True),
        ("cuda_max_allocated", False),
        ("mps_sampled_max_allocated", False),
    ],
)
def test_n1_device_memory_is_noisy_only_when_it_is_an_rss(source: str, noisy: bool) -> None:
    from adrbench.results.metrics import RSS_SD_BYTES, process_noise_sd

    # GIVEN one repetition's principal memory counter from each kind of source
    sd = process_noise_sd("peak_memory_bytes", 600e6, None, source)
    # THEN the RSS gets the page-cache noise and an allocator's peak is exact for its scenario
    assert sd == (RSS_SD_BYTES if noisy else None)


def test_n1_anonymous_rss_gets_its_own_small_noise() -> None:
    from adrbench.results.metrics import ANON_RSS_CV, RSS_SD_BYTES, process_noise_sd

    # GIVEN a 1 GB anonymous-RSS peak measured once
    sd = process_noise_sd("train_peak_anon_rss_bytes", 1e9, 1)
    # THEN its interval is ~1% of it, far narrower than the page-cache noise of whole RSS
    assert sd == 1e9 * ANON_RSS_CV
    assert sd is not None and sd < RSS_SD_BYTES / 5


def test_n1_without_a_documented_noise_is_exact() -> None:
    e = estimate([(42, 0.82)])
    assert e.exact and e.method == "exact"
    assert compare(">", e, 0.8199) is True


# --- exact facts -----------------------------------------------------------------------------


def test_exact_facts_behave_exactly_as_before() -> None:
    # GIVEN plain numbers (parameter counts, env, probes) THEN no interval, no inconclusive
    facts: dict[str, Value | Missing] = {"model.parameters": 22_713_216.0, "env.cuda": False}
    result = evaluate(parse("model.parameters * 4 < 1GB and not env.cuda"), facts.get)
    assert result.value is True and not result.inconclusive and result.intervals == {}
    assert result.computed == {"model.parameters * 4": 4 * 22_713_216.0}
    assert judge("model.parameters >= 22713216", facts) == "holds"
    assert judge("model.parameters > 22713216", facts) == "fails"


def test_a_zero_width_estimate_compares_exactly() -> None:
    # GIVEN a metric equal in every repetition (trainable parameters) THEN it compares exactly
    e = estimate([(42, 331_776.0), (43, 331_776.0), (44, 331_776.0)])
    assert e.exact
    assert compare(">=", e, 331_776.0) is True
    assert compare(">", e, 331_776.0) is False


# --- how many more runs -----------------------------------------------------------------------


def test_power_estimate_worked_by_hand() -> None:
    # With sd / gap = 1, n must satisfy n >= (t(0.975, n-1) + t(0.8, n-1))^2:
    #   n = 9:  (2.306 + 0.889)^2 = 10.21 > 9   -> not enough
    #   n = 10: (2.262 + 0.883)^2 =  9.89 <= 10 -> enough
    assert repetitions_to_resolve(gap=0.02, sd=0.02) == 10
    # A gap four times the SD needs the minimum; a zero gap can never be resolved
    assert repetitions_to_resolve(gap=4.0, sd=1.0) == 3
    assert repetitions_to_resolve(gap=0.0, sd=1.0) is None


def test_inconclusive_verdict_says_how_many_repetitions_would_resolve_it() -> None:
    # GIVEN 3 repetitions, mean 100, SD 2, against threshold 101 (gap 1 = SD / 2)
    facts: dict[str, Value | Missing] = {"x": estimate([(1, 98.0), (2, 100.0), (3, 102.0)])}
    result = evaluate(parse("x > 101"), facts.get)
    assert result.inconclusive
    assert result.gap == pytest.approx(1.0)
    assert result.resolve == repetitions_to_resolve(1.0, 2.0) == 34


# --- repetitions in scenarios and results ---------------------------------------------------


def test_repeats_and_seeds_stay_out_of_the_fingerprint_but_each_seed_is_in() -> None:
    one = Scenario(name="full", method="full")
    three = Scenario(name="full", method="full", repeats=3)
    assert three.fingerprint() == one.fingerprint()
    assert three.repetition_seeds() == (42, 43, 44)
    assert three.repetition(42).fingerprint() == one.fingerprint()
    assert three.repetition(43).fingerprint() != one.fingerprint()
    assert Scenario(name="full", seeds=(7, 9)).repetition_seeds() == (7, 9)


def test_the_quick_profile_keeps_the_committed_baseline_fingerprints() -> None:
    # GIVEN the committed CI baseline WHEN the quick suite is loaded by this code THEN every
    # scenario's fingerprint is the baseline's (else the gate would call every row incomparable)
    suite = load_suite(REPO / "bench/finetune_sts.toml")
    (baseline,) = (REPO / "results/baselines").glob("*/finetune_sts-quick.json")
    recorded = {r.name: r.fingerprint for r in load_run(baseline).scenarios}
    for scenario in suite.scenarios("quick"):
        first = scenario.repetition(scenario.repetition_seeds()[0])
        assert first.fingerprint() == recorded[scenario.name]


def test_full_profile_repeats_every_scenario_three_times() -> None:
    suite = load_suite(REPO / "bench/finetune_sts.toml")
    assert all(len(s.repetition_seeds()) >= 3 for s in suite.scenarios("full"))


def test_a_repeated_run_round_trips_with_every_repetition_and_the_aggregate() -> None:
    run = make_finetune_sts_run(repeats=3)
    back = run_from_json(run_to_json(run))
    assert back == run
    full = back.scenario("full")
    assert [r.scenario.seed for r in full.samples()] == [42, 43, 44]
    assert full.aggregate["peak_rss_bytes"].n == 3
    assert full.aggregate["peak_rss_bytes"].mean == pytest.approx(
        MEASURED["full"]["peak_rss_bytes"]
    )


def test_older_runs_load_as_one_repetition() -> None:
    # GIVEN a committed run written before schema 3 WHEN loaded THEN each scenario is its own only
    # repetition, with no aggregate
    path = sorted((REPO / "results/runs").glob("*-full-*.json"))
    path = [p for p in path if not p.name.endswith(".benchmark.json")]
    data = json.loads(path[0].read_text(encoding="utf-8"))
    assert data["schema_version"] < 3
    run = load_run(path[0])
    for result in run.scenarios:
        assert result.samples() == (result,)
        assert result.repetitions == () and result.aggregate == {}


@pytest.mark.parametrize("op", ["+", "-", "*"])
def test_an_exact_zero_on_either_side_is_only_refused_as_a_divisor(op: str) -> None:
    # GIVEN an estimate and an exact zero
    e = estimate([(42, 1.0), (43, 2.0), (44, 3.0)])
    # WHEN combined by anything but division THEN it is plain arithmetic on the interval
    for result in (combine(op, e, 0.0), combine(op, 0.0, e)):
        assert isinstance(result, Estimate)
    assert combine("+", e, 0.0) == combine("+", 0.0, e)
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        combine("/", e, 0.0)


def test_two_repetitions_over_the_same_seeds_already_pair() -> None:
    # GIVEN two estimates of n = 2 over the same seeds
    a = estimate([(42, 10.0), (43, 12.0)])
    b = estimate([(42, 9.0), (43, 11.0)])
    # WHEN subtracted THEN the difference is paired by seed (each pair differs by exactly 1)
    d = combine("-", a, b)
    assert isinstance(d, Estimate)
    assert d.method == "paired-t" and d.mean == 1.0 and d.low == d.high == 1.0
