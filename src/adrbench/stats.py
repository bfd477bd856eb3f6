"""Small, pure statistics: the regression gate's paired tests, and estimates across repetitions.

Nothing here knows about results files.

**Estimates across repetitions** (:class:`Estimate`, used by claims, triggers and premises). One
repetition is one fresh process with its own seed, so repetitions are independent samples and the
steps inside one process are not. The interval is a Student-t 95% interval on the mean across
repetitions: with the n = 3 to 5 repetitions a benchmark can afford, a bootstrap has only n**n
resamples and its percentile interval is too narrow (at n = 3 it covers far below 95%), while the
t-interval is exact for normal noise and widens honestly as n shrinks (t = 4.30 at n = 3).
When both sides of a ratio or difference share their seeds, they are paired by seed: a difference
is a t-interval on the per-seed differences, a ratio (or product) a t-interval on the per-seed
log-ratios, exponentiated, so a seed that is good for both methods cancels out. Unpaired sides
combine by Welch's approximation (on the log scale for ratios). With n = 1 there is no spread to
measure: a metric with a documented process noise (see ``adrbench.results.metrics``) gets a
normal interval of +-1.96 of that noise; any other metric is taken at face value (an exact value).
:func:`repetitions_to_resolve` is the power calculation for an inconclusive comparison.

The gate's time comparison is built from three pieces:

* :func:`paired_log_ratios` — step ``i`` of two runs of one scenario trains on the same batch, so
  ``log(current_i / baseline_i)`` cancels the (large) batch-to-batch variation of step time;
* :func:`median_standard_error` — how precisely the median of those log ratios is known *within*
  one pair of processes;
* :func:`process_aware_p_value` — a two-sided test whose null hypothesis includes the
  between-process variance, which the per-step samples alone cannot see.

The last point is the one that matters: the step times of one process share a process-level
offset (CPU placement, other load, allocator state), so a rank test over the steps of two single
runs (:func:`mann_whitney_u`, kept for comparison and for the noise study) treats each step as
independent evidence and calls process-to-process noise "significant". ``bench/gate_noise.md``
shows the false-alarm rate of both on this machine.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CONFIDENCE",
    "Estimate",
    "ShiftTest",
    "combine",
    "compare",
    "estimate",
    "mad_sigma",
    "mann_whitney_u",
    "median",
    "median_standard_error",
    "normal_two_sided_p",
    "paired_log_ratios",
    "process_aware_p_value",
    "repetitions_to_resolve",
    "shift_test",
    "t_quantile",
]

# Consistency constant: MAD * 1.4826 estimates the standard deviation of a normal distribution.
_MAD_TO_SIGMA = 1.482602218505602
# Asymptotic efficiency of the median: SE(median) = sqrt(pi / 2) * sigma / sqrt(n) for normal data.
_MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2.0)


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence.

    Args:
        values: The numbers.

    Raises:
        ValueError: when ``values`` is empty.
    """
    if not values:
        raise ValueError("median of an empty sequence")
    ordered = sorted(values)
    n = len(ordered)
    middle = n // 2
    if n % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def mad_sigma(values: Sequence[float]) -> float:
    """A robust standard deviation: 1.4826 times the median absolute deviation.

    One step slowed by another process's burst barely moves it, unlike the sample SD.

    Args:
        values: The numbers (at least one).
    """
    centre = median(values)
    return _MAD_TO_SIGMA * median([abs(v - centre) for v in values])


def median_standard_error(values: Sequence[float]) -> float:
    """Standard error of the median of ``values``, from their robust spread.

    Args:
        values: Independent-ish samples (e.g. paired log ratios of step times); at least one.
    """
    return _MEDIAN_SE_FACTOR * mad_sigma(values) / math.sqrt(len(values))


def paired_log_ratios(current: Sequence[float], baseline: Sequence[float]) -> tuple[float, ...]:
    """``log(current[i] / baseline[i])`` for each index both sequences have.

    Args:
        current: Positive per-step values of the candidate run, in data order.
        baseline: Positive per-step values of the baseline run, in the same order.

    Raises:
        ValueError: when a value is not positive or the sequences have no common index.
    """
    n = min(len(current), len(baseline))
    if n == 0:
        raise ValueError("no paired samples: one of the sequences is empty")
    ratios = []
    for i in range(n):
        c, b = current[i], baseline[i]
        if not (c > 0 and b > 0):
            raise ValueError(f"step {i}: times must be positive, got current={c!r} baseline={b!r}")
        ratios.append(math.log(c / b))
    return tuple(ratios)


def normal_two_sided_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic ``z``.

    Args:
        z: The statistic.
    """
    return math.erfc(abs(z) / math.sqrt(2.0))


def process_aware_p_value(log_change: float, within_se: float, process_sd: float) -> float:
    """Two-sided p-value for a log change between two single-process runs.

    The variance of the difference of two runs' log levels is the within-run sampling variance
    plus *twice* the between-process variance (one process-level offset on each side). With
    ``process_sd = 0`` this is the ordinary z-test on the samples, which over-states significance
    whenever processes differ.

    Args:
        log_change: Estimated ``log(current / baseline)``.
        within_se: Standard error of ``log_change`` from the samples of this pair of runs.
        process_sd: Standard deviation of one process's log level about the true level (the
            per-process coefficient of variation, for small values), measured on the machine.
    """
    variance = within_se**2 + 2.0 * process_sd**2
    if variance <= 0.0:
        return 1.0 if log_change == 0.0 else 0.0
    return normal_two_sided_p(log_change / math.sqrt(variance))


@dataclass(frozen=True, slots=True)
class ShiftTest:
    """The outcome of comparing paired per-step samples of two runs.

    Args:
        log_change: Median of the paired log ratios (plus the calibration correction, if any).
        within_se: Its standard error from the samples alone.
        p_value: Two-sided p-value under a null that includes between-process variance.
        pairs: Number of paired samples used.
    """

    log_change: float
    within_se: float
    p_value: float
    pairs: int

    @property
    def ratio(self) -> float:
        """``current / baseline`` as a plain ratio (1.10 = 10% more)."""
        return math.exp(self.log_change)


def shift_test(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    process_sd: float,
    log_offset: float = 0.0,
) -> ShiftTest:
    """Robust paired shift between two runs' per-step values, with a process-aware p-value.

    Args:
        current: Per-step values of the candidate (positive, data order).
        baseline: Per-step values of the baseline (positive, same order).
        process_sd: Between-process standard deviation of the log level (see
            :func:`process_aware_p_value`).
        log_offset: Added to the median log ratio, e.g. ``log(calibration_current /
            calibration_baseline)`` to normalise by an in-process calibration kernel.
    """
    ratios = paired_log_ratios(current, baseline)
    log_change = median(ratios) + log_offset
    within_se = median_standard_error(ratios)
    p = process_aware_p_value(log_change, within_se, process_sd)
    return ShiftTest(log_change=log_change, within_se=within_se, p_value=p, pairs=len(ratios))


def mann_whitney_u(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Mann-Whitney U test (two-sided, normal approximation with tie and continuity correction).

    This is what asv applies to the samples of two runs. It assumes every sample is independent,
    which per-step times of one process are not; it is here to measure that mistake, not to gate.

    Args:
        x: First sample (non-empty).
        y: Second sample (non-empty).

    Returns:
        ``(U of x, two-sided p-value)``; the p-value matches
        ``scipy.stats.mannwhitneyu(x, y, method="asymptotic")``.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann-Whitney U needs two non-empty samples")
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks = [0.0] * len(pooled)
    tie_term = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        average_rank = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[k] = average_rank
        ties = j - i + 1
        tie_term += ties**3 - ties
        i = j + 1
    rank_sum_x = sum(r for r, (_v, group) in zip(ranks, pooled, strict=True) if group == 0)
    u1 = rank_sum_x - n1 * (n1 + 1) / 2.0
    mean_u = n1 * n2 / 2.0
    n = n1 + n2
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0.0:
        return u1, 1.0
    u_big = max(u1, n1 * n2 - u1)
    z = (u_big - mean_u - 0.5) / math.sqrt(variance)
    return u1, min(1.0, 2.0 * 0.5 * math.erfc(z / math.sqrt(2.0)))


# --- estimates across repetitions ------------------------------------------------------------

CONFIDENCE = 0.95


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz, Numerical Recipes)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _regularized_beta(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(probability: float, df: float) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (inf: normal).

    Pure Python (the incomplete beta function, inverted by bisection to 1e-12), so judging ADRs
    imports no scipy; agrees with ``scipy.stats.t.ppf`` to 1e-9 (tests/test_stats.py).

    Args:
        probability: In (0, 1), e.g. 0.975 for a two-sided 95% interval.
        df: Degrees of freedom (> 0), or ``math.inf``.
    """
    if math.isinf(df):
        return statistics.NormalDist().inv_cdf(probability)
    if probability < 0.5:
        return -t_quantile(1.0 - probability, df)
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < probability:
        low, high = high, high * 2.0
    while high - low > 1e-12 * max(1.0, high):
        middle = (low + high) / 2.0
        if _t_cdf(middle, df) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean across repetitions with its 95% confidence interval.

    Args:
        mean: The point estimate (for a paired ratio, the geometric mean of the per-seed ratios).
        low: Lower end of the 95% interval.
        high: Upper end.
        n: Repetitions behind it (for an unpaired combination, the smaller side's).
        se: Standard error of ``mean``, on its own scale (0 for an exact value).
        df: Degrees of freedom of the interval (``inf``: a normal interval, e.g. an n = 1 prior).
        method: How the interval was made, for reports: ``t``, ``paired-t``, ``paired-log-t``,
            ``welch``, ``prior`` (n = 1 with a documented process noise) or ``exact``.
        samples: ``(seed, value)`` per repetition, when the value is known per seed.
    """

    mean: float
    low: float
    high: float
    n: int
    se: float
    df: float
    method: str
    samples: tuple[tuple[int, float], ...] = ()

    @property
    def half_width(self) -> float:
        """Half the interval's width (for ``mean +- half_width``)."""
        return (self.high - self.low) / 2.0

    @property
    def exact(self) -> bool:
        return self.low == self.high

    @property
    def sd(self) -> float:
        """Standard deviation of one repetition (``se * sqrt(n)``), for power calculations."""
        return self.se * math.sqrt(max(self.n, 1))

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(seed for seed, _ in self.samples)


def _interval(mean: float, se: float, df: float) -> tuple[float, float]:
    if se == 0.0:
        return mean, mean
    half = t_quantile(0.5 + CONFIDENCE / 2.0, df) * se
    return mean - half, mean + half


def estimate(samples: Sequence[tuple[int, float]], *, prior_sd: float | None = None) -> Estimate:
    """The t-interval of the mean of per-repetition values.

    Args:
        samples: ``(seed, value)`` per repetition (at least one).
        prior_sd: Standard deviation of one repetition known from elsewhere (the metric's
            measured process noise), used only when there is a single repetition. None: a single
            repetition is exact.

    Raises:
        ValueError: when ``samples`` is empty.
    """
    if not samples:
        raise ValueError("an estimate needs at least one repetition")
    values = [v for _, v in samples]
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        if not prior_sd:
            return Estimate(mean, mean, mean, 1, 0.0, math.inf, "exact", tuple(samples))
        low, high = _interval(mean, prior_sd, math.inf)
        return Estimate(mean, low, high, 1, prior_sd, math.inf, "prior", tuple(samples))
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    se = sd / math.sqrt(n)
    low, high = _interval(mean, se, n - 1)
    return Estimate(mean, low, high, n, se, float(n - 1), "t", tuple(samples))


def _exact(value: float) -> Estimate:
    return Estimate(value, value, value, 1, 0.0, math.inf, "exact")


def _apply_op(op: str, a: float, b: float) -> float:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b


def _paired(op: str, a: Estimate, b: Estimate) -> Estimate:
    pairs = [(seed, x, dict(b.samples)[seed]) for seed, x in a.samples]
    if op in "*/" and all(x > 0 and y > 0 for _, x, y in pairs):
        logs = [
            (seed, math.log(x) + (math.log(y) if op == "*" else -math.log(y)))
            for seed, x, y in pairs
        ]
        inner = estimate(logs)
        mean = math.exp(inner.mean)
        samples = tuple((seed, math.exp(v)) for seed, v in logs)
        return Estimate(
            mean,
            math.exp(inner.low),
            math.exp(inner.high),
            inner.n,
            mean * inner.se,
            inner.df,
            "paired-log-t",
            samples,
        )
    inner = estimate([(seed, _apply_op(op, x, y)) for seed, x, y in pairs])
    return dataclasses.replace(inner, method="paired-t")


def _welch_df(terms: Sequence[tuple[float, float]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of variances ``(variance, df)``."""
    total = math.fsum(v for v, _ in terms)
    denominator = math.fsum(v * v / df for v, df in terms if v > 0 and not math.isinf(df))
    if total == 0.0 or denominator == 0.0:
        return math.inf
    return total * total / denominator


def _unpaired(op: str, a: Estimate, b: Estimate) -> Estimate:
    mean = _apply_op(op, a.mean, b.mean)
    n = min(a.n, b.n)
    if op in "+-":
        se = math.sqrt(a.se**2 + b.se**2)
        df = _welch_df([(a.se**2, a.df), (b.se**2, b.df)])
        low, high = _interval(mean, se, df)
        return Estimate(mean, low, high, n, se, df, "welch" if se else "exact")
    if a.mean > 0 and b.mean > 0:
        ra, rb = a.se / a.mean, b.se / b.mean
        rse = math.sqrt(ra**2 + rb**2)
        df = _welch_df([(ra**2, a.df), (rb**2, b.df)])
        low, high = _interval(math.log(mean), rse, df)
        return Estimate(
            mean, math.exp(low), math.exp(high), n, mean * rse, df, "welch" if rse else "exact"
        )
    # Non-positive values: first-order (delta method) propagation on the linear scale.
    if op == "*":
        se = math.sqrt((b.mean * a.se) ** 2 + (a.mean * b.se) ** 2)
    else:
        se = math.sqrt((a.se / b.mean) ** 2 + (a.mean * b.se / b.mean**2) ** 2)
    df = _welch_df([(a.se**2, a.df), (b.se**2, b.df)])
    low, high = _interval(mean, se, df)
    return Estimate(mean, low, high, n, se, df, "welch" if se else "exact")


def _with_constant(op: str, a: Estimate, c: float, *, constant_first: bool) -> Estimate:
    """``a op c`` (or ``c op a``): a monotone map of every sample and of the interval."""

    def f(x: float) -> float:
        return _apply_op(op, c, x) if constant_first else _apply_op(op, x, c)

    samples = tuple((seed, f(v)) for seed, v in a.samples)
    ends = sorted((f(a.low), f(a.high)))
    mean = f(a.mean)
    if op in "+-":
        se = a.se
    elif op == "*" or not constant_first:
        se = a.se * abs(c if op == "*" else 1.0 / c)
    else:  # c / a: first-order
        se = abs(c) * a.se / (a.mean * a.mean)
    return Estimate(mean, ends[0], ends[1], a.n, se, a.df, a.method, samples)


def combine(op: str, a: Estimate | float, b: Estimate | float) -> Estimate | float:
    """``a op b`` for ``op`` in ``+ - * /`` with the uncertainty carried along.

    Both exact: plain arithmetic. One side exact: the other side's samples and interval are mapped
    through the operation. Both estimates over the same seeds (n >= 2): paired by seed (see the
    module docstring). Otherwise: Welch's combination of the standard errors.

    Raises:
        ZeroDivisionError: dividing by an exact zero, or by an estimate whose interval holds zero.
    """
    if not isinstance(a, Estimate) and not isinstance(b, Estimate):
        if op == "/" and b == 0:
            raise ZeroDivisionError("division by zero")
        return _apply_op(op, a, b)
    if isinstance(b, Estimate) and op == "/" and b.low <= 0.0 <= b.high:
        raise ZeroDivisionError("the divisor's interval contains zero")
    if not isinstance(b, Estimate):
        if op == "/" and b == 0:
            raise ZeroDivisionError("division by zero")
        assert isinstance(a, Estimate)
        return _with_constant(op, a, float(b), constant_first=False)
    if not isinstance(a, Estimate):
        return _with_constant(op, b, float(a), constant_first=True)
    if a.n >= 2 and a.samples and sorted(a.seeds) == sorted(b.seeds) and len(set(a.seeds)) == a.n:
        return _paired(op, a, b)
    return _unpaired(op, a, b)


def compare(op: str, a: Estimate | float, b: Estimate | float) -> bool | None:
    """``a op b`` three ways: True when the whole 95% interval of ``a - b`` satisfies it, False
    when the whole interval violates it, None (inconclusive) when it straddles.

    Exact values compare as plain numbers. ``==`` on an uncertain value can never be shown true:
    it is False when the interval excludes equality and inconclusive otherwise.
    """
    if isinstance(a, Estimate) and isinstance(b, Estimate):
        d = combine("-", a, b)
        assert isinstance(d, Estimate)
        low, high = d.low, d.high
    else:
        shift = b if isinstance(a, Estimate) else a
        est = a if isinstance(a, Estimate) else b
        assert isinstance(est, Estimate) and not isinstance(shift, Estimate)
        sign = 1.0 if isinstance(a, Estimate) else -1.0
        ends = sorted((sign * (est.low - shift), sign * (est.high - shift)))
        low, high = ends
    checks = {
        "<": (high < 0, low >= 0),
        "<=": (high <= 0, low > 0),
        ">": (low > 0, high <= 0),
        ">=": (low >= 0, high < 0),
        "==": (low == high == 0, low > 0 or high < 0),
        "!=": (low > 0 or high < 0, low == high == 0),
    }
    holds, fails = checks[op]
    if holds:
        return True
    if fails:
        return False
    return None


def repetitions_to_resolve(
    gap: float, sd: float, *, power: float = 0.8, limit: int = 10_000
) -> int | None:
    """About how many repetitions would resolve a comparison whose estimate sits ``gap`` from
    its threshold, given a per-repetition standard deviation ``sd``.

    The smallest n with ``n >= ((t(0.975, n-1) + t(power, n-1)) * sd / gap) ** 2``: the n at which
    a true difference of ``gap`` would put the 95% interval clear of the threshold with
    probability ``power`` (the usual sample-size formula, with t in place of z because n is small).

    Args:
        gap: Distance of the point estimate from the threshold (its scale).
        sd: Standard deviation of one repetition on the same scale.
        power: Probability of resolving it, 0.8 by convention.
        limit: Give up (None) beyond this many repetitions.

    Returns:
        The number of repetitions (at least 2), or None when the gap is zero or needs more than
        ``limit``.
    """
    gap = abs(gap)
    if gap == 0.0 or not math.isfinite(gap):
        return None
    if sd == 0.0:
        return 2
    for n in range(2, limit + 1):
        df = float(n - 1)
        needed = ((t_quantile(0.5 + CONFIDENCE / 2.0, df) + t_quantile(power, df)) * sd / gap) ** 2
        if n >= needed:
            return n
    return None
