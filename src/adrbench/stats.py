"""Small, pure statistics for the regression gate: paired ratios, robust spread, significance.

Nothing here knows about results files. The gate's time comparison is built from three pieces:

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

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ShiftTest",
    "mad_sigma",
    "mann_whitney_u",
    "median",
    "median_standard_error",
    "normal_two_sided_p",
    "paired_log_ratios",
    "process_aware_p_value",
    "shift_test",
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
