from __future__ import annotations

import dataclasses
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from adrbench.stats import (
    Estimate,
    compare,
    estimate,
    mad_sigma,
    mann_whitney_u,
    median,
    median_standard_error,
    normal_two_sided_p,
    paired_log_ratios,
    process_aware_p_value,
    shift_test,
)

positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)


def test_median_of_odd_and_even_lengths() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


def test_median_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^median of an empty sequence$"):
        median([])


def test_mad_sigma_ignores_one_wild_value() -> None:
    # GIVEN steps that scatter by ±1 around 10, one of them hit by another process (100)
    steps = [9.0, 11.0, 9.0, 11.0, 10.0, 100.0]
    # WHEN/THEN the robust spread stays near the ±1 scatter (MAD 1 -> sigma 1.4826)
    assert mad_sigma(steps) == pytest.approx(1.482602218505602)


def test_median_standard_error_shrinks_with_the_square_root_of_n() -> None:
    values = [-1.0, 1.0] * 8
    assert median_standard_error(values) == pytest.approx(
        math.sqrt(math.pi / 2) * 1.482602218505602 / 4.0
    )


def test_paired_log_ratios_pair_by_index_and_use_the_common_length() -> None:
    assert paired_log_ratios([2.0, 3.0, 9.0], [1.0, 3.0]) == (math.log(2.0), 0.0)


def test_paired_log_ratios_refuse_non_positive_times() -> None:
    with pytest.raises(
        ValueError, match=r"^step 1: times must be positive, got current=0\.0 baseline=1\.0$"
    ):
        paired_log_ratios([1.0, 0.0], [1.0, 1.0])


def test_paired_log_ratios_refuse_an_empty_run() -> None:
    with pytest.raises(ValueError, match=r"^no paired samples: one of the sequences is empty$"):
        paired_log_ratios([], [1.0])


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1.0, 2.0, 3.0, 4.0, 5.0], [3.5, 6.0, 7.0, 8.0]),
        ([1.0, 1.0, 2.0, 2.0, 3.0], [2.0, 2.0, 3.0, 3.0, 3.0, 4.0]),  # ties
        ([0.5] * 4, [0.5] * 3 + [0.6]),
    ],
)
def test_mann_whitney_u_matches_scipy_asymptotic(x: list[float], y: list[float]) -> None:
    u, p = mann_whitney_u(x, y)
    expected = mannwhitneyu(x, y, method="asymptotic")
    assert u == pytest.approx(float(expected.statistic))
    assert p == pytest.approx(float(expected.pvalue))


def test_mann_whitney_u_of_identical_constant_samples_is_not_significant() -> None:
    assert mann_whitney_u([1.0, 1.0], [1.0, 1.0]) == (2.0, 1.0)


def test_process_aware_p_value_without_process_noise_is_the_plain_z_test() -> None:
    assert process_aware_p_value(0.2, 0.1, 0.0) == pytest.approx(normal_two_sided_p(2.0))
    assert normal_two_sided_p(1.959963984540054) == pytest.approx(0.05)


def test_process_noise_counts_twice_once_per_run() -> None:
    # sqrt(0.03² + 2 * 0.02²) = sqrt(0.0017)
    p = process_aware_p_value(0.1, 0.03, 0.02)
    assert p == pytest.approx(normal_two_sided_p(0.1 / math.sqrt(0.0017)))


def test_a_process_offset_fools_the_rank_test_but_not_the_process_aware_test() -> None:
    # GIVEN two runs of the same code whose processes differ by 8% (a process-level offset:
    # every step of the second run is slower), with 5% step-to-step noise
    rng = random.Random(7)
    base = [1.0 * math.exp(rng.gauss(0, 0.05)) for _ in range(25)]
    cur = [1.08 * math.exp(rng.gauss(0, 0.05)) for _ in range(25)]
    # WHEN both tests judge the steps
    _u, p_rank = mann_whitney_u(cur, base)
    shift = shift_test(cur, base, process_sd=0.06)
    # THEN the rank test, treating 25 steps as 25 independent runs, calls it significant;
    # the test whose null includes a 6% process-to-process spread does not
    assert p_rank < 0.002
    assert shift.p_value > 0.05


def test_shift_test_reports_the_ratio_and_adds_the_calibration_offset() -> None:
    base = [1.0, 2.0, 1.5, 3.0]
    cur = [1.2 * t for t in base]
    test = shift_test(cur, base, process_sd=0.0, log_offset=math.log(0.5))
    assert test.ratio == pytest.approx(0.6)
    assert test.pairs == 4
    assert test.within_se == pytest.approx(0.0, abs=1e-12)


@given(
    st.lists(positive, min_size=2, max_size=30),
    st.floats(min_value=0.1, max_value=10.0),
    st.floats(min_value=0.0, max_value=0.3),
)
def test_shift_test_is_invariant_to_the_unit_of_time(
    times: list[float], scale: float, process_sd: float
) -> None:
    # Measuring both runs in milliseconds instead of seconds changes nothing.
    cur = [t * 1.1 for t in reversed(times)]
    plain = shift_test(cur, times, process_sd=process_sd)
    scaled = shift_test([t * scale for t in cur], [t * scale for t in times], process_sd=process_sd)
    assert scaled.log_change == pytest.approx(plain.log_change, abs=1e-9)
    assert scaled.p_value == pytest.approx(plain.p_value, abs=1e-9)


@given(
    st.lists(positive, min_size=2, max_size=30),
    st.lists(positive, min_size=2, max_size=30),
    st.floats(min_value=0.0, max_value=0.3),
)
def test_swapping_the_runs_flips_the_sign_and_keeps_the_p_value(
    a: list[float], b: list[float], process_sd: float
) -> None:
    forward = shift_test(a, b, process_sd=process_sd)
    backward = shift_test(b, a, process_sd=process_sd)
    assert backward.log_change == pytest.approx(-forward.log_change, abs=1e-9)
    assert backward.p_value == pytest.approx(forward.p_value, abs=1e-9)


@given(
    st.floats(min_value=-1.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=0.5),
    st.floats(min_value=0.0, max_value=0.5),
    st.floats(min_value=0.0, max_value=0.5),
)
def test_more_process_noise_never_makes_a_change_more_significant(
    log_change: float, within_se: float, sd: float, more: float
) -> None:
    assert (
        process_aware_p_value(log_change, within_se, sd + more)
        >= process_aware_p_value(log_change, within_se, sd) - 1e-12
    )


# --- edges that mutation testing found unchecked (tools/mutation.sh) -------------------------


@pytest.mark.parametrize(("current", "baseline"), [([1.0], [0.0]), ([0.0], [1.0]), ([-1.0], [1.0])])
def test_a_step_time_that_is_not_positive_is_refused(
    current: list[float], baseline: list[float]
) -> None:
    with pytest.raises(ValueError, match=r"step 0: times must be positive"):
        paired_log_ratios(current, baseline)


def test_step_times_below_one_second_are_fine() -> None:
    assert paired_log_ratios([0.25, 0.5], [0.5, 0.5]) == (math.log(0.5), 0.0)


def test_with_no_noise_at_all_a_change_is_certain_and_no_change_is_not() -> None:
    assert process_aware_p_value(0.0, 0.0, 0.0) == 1.0
    assert process_aware_p_value(0.01, 0.0, 0.0) == 0.0


def test_mann_whitney_accepts_single_values_and_refuses_an_empty_sample() -> None:
    # one value each: variance 1/4 > 0, so the p-value is computed (scipy's asymptotic one)
    u, p = mann_whitney_u([1.0], [2.0])
    expected = mannwhitneyu([1.0], [2.0], alternative="two-sided", method="asymptotic")
    assert u == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)
    # one against two: variance 2/3 (below 1), p well below 1
    u, p = mann_whitney_u([1.0], [2.0, 3.0])
    expected = mannwhitneyu([1.0], [2.0, 3.0], alternative="two-sided", method="asymptotic")
    assert u == 0.0
    assert p == pytest.approx(expected.pvalue) and p < 0.6
    with pytest.raises(ValueError, match="two non-empty samples"):
        mann_whitney_u([], [1.0])
    with pytest.raises(ValueError, match="two non-empty samples"):
        mann_whitney_u([1.0], [])


def test_a_shift_test_result_is_frozen_and_slotted() -> None:
    # results cross into the gate and its report: nothing downstream may change them
    result = shift_test([1.1, 1.2], [1.0, 1.0], process_sd=0.02)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.p_value = 0.0  # type: ignore[misc]
    assert not hasattr(result, "__dict__")


@pytest.mark.parametrize("df", [1.0, 1.5, 2.0, 3.0, 4.7, 9.0, 30.0, 1000.0])
@pytest.mark.parametrize("probability", [0.5, 0.8, 0.975, 0.995])
def test_t_quantile_agrees_with_scipy(df: float, probability: float) -> None:
    from scipy import stats as scipy_stats

    from adrbench.stats import t_quantile

    assert t_quantile(probability, df) == pytest.approx(
        float(scipy_stats.t.ppf(probability, df)), abs=1e-9
    )
    assert t_quantile(1 - probability, df) == pytest.approx(-t_quantile(probability, df))


# --- compare: a op b and b op' a agree ----------------------------------------------------------

# Each operator with its mirror: `a < b` says what `b > a` says.
MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
exact_values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
estimates = st.lists(exact_values, min_size=1, max_size=5).map(
    lambda values: estimate(list(enumerate(values, start=42)), prior_sd=abs(values[0]) * 0.02 + 1)
)
sides = st.one_of(exact_values, estimates)


@given(
    op=st.sampled_from(sorted(MIRROR)),
    a=sides,
    b=sides,
)
def test_compare_gives_the_mirrored_verdict_with_the_sides_swapped(
    op: str, a: Estimate | float, b: Estimate | float
) -> None:
    # An exact constant may stand on either side (`8GB > results.lora.peak_memory_bytes`): the
    # verdict must not depend on which side a value is written on.
    if not isinstance(a, Estimate) and not isinstance(b, Estimate):
        a = estimate([(42, a)])  # exact: compare needs one side with an interval
    assert compare(op, a, b) == compare(MIRROR[op], b, a)


@pytest.mark.parametrize(
    ("op", "expected"),
    [("<", False), ("<=", False), (">", True), (">=", True), ("==", False), ("!=", True)],
)
def test_compare_with_the_constant_on_the_left(op: str, expected: bool) -> None:
    # GIVEN a peak of 1.5 GB +- 0.1 GB (three repetitions) and an 8 GB budget on the left
    peak = estimate([(42, 1.4e9), (43, 1.5e9), (44, 1.6e9)])
    # THEN `8GB op peak` is decided on the whole interval (8GB > peak holds, 8GB < peak fails),
    # and `peak op' 8GB` says the same
    assert compare(op, 8e9, peak) is expected
    assert compare(MIRROR[op], peak, 8e9) is expected


# --- the pieces the estimates rest on, pinned to scipy (killed mutants of stats.py) ------------


def test_an_estimate_is_the_95_percent_t_interval_of_the_mean() -> None:
    from scipy.stats import t

    e = estimate([(42, 1.0), (43, 2.0), (44, 3.0)])
    half = t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd 1, n 3
    assert (e.mean, e.n, e.df) == (2.0, 3, 2.0)
    assert e.low == pytest.approx(2.0 - half, rel=1e-9)
    assert e.high == pytest.approx(2.0 + half, rel=1e-9)


@pytest.mark.parametrize(
    ("a", "b", "x"),
    [(2.0, 3.0, 0.0), (2.0, 3.0, 1.0), (0.5, 0.5, 1e-12), (1.0, 0.5, 0.3), (15.0, 0.5, 0.97)],
)
def test_the_regularized_incomplete_beta_matches_scipy(a: float, b: float, x: float) -> None:
    from scipy.special import betainc

    from adrbench.stats import _regularized_beta

    assert _regularized_beta(a, b, x) == pytest.approx(float(betainc(a, b, x)), abs=1e-12)


@pytest.mark.parametrize(
    ("x", "y"), [([1.0], [2.0]), ([1.0, 1.0], [1.0, 2.0]), ([3.0, 1.0, 2.0], [5.0, 4.0])]
)
def test_mann_whitney_on_the_smallest_samples_matches_scipy(x: list[float], y: list[float]) -> None:
    u, p = mann_whitney_u(x, y)
    expected = mannwhitneyu(x, y, method="asymptotic", alternative="two-sided")
    assert u == pytest.approx(float(expected.statistic))
    assert p == pytest.approx(float(expected.pvalue), rel=1e-9)


def test_mann_whitney_refuses_an_empty_sample() -> None:
    with pytest.raises(ValueError, match=r"^Mann-Whitney U needs two non-empty samples$"):
        mann_whitney_u([], [1.0])


def test_a_single_repetition_is_exact_or_carries_its_prior() -> None:
    from scipy.stats import norm

    exact = estimate([(42, 5.0)])
    assert (exact.low, exact.high, exact.n, exact.method, exact.se) == (5.0, 5.0, 1, "exact", 0.0)
    prior = estimate([(42, 5.0)], prior_sd=0.5)
    half = norm.ppf(0.975) * 0.5
    assert (prior.mean, prior.n, prior.method, prior.se, prior.df) == (
        5.0,
        1,
        "prior",
        0.5,
        math.inf,
    )
    assert prior.low == pytest.approx(5.0 - half, rel=1e-9)
    assert prior.high == pytest.approx(5.0 + half, rel=1e-9)
    assert prior.samples == ((42, 5.0),)
