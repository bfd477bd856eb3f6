"""The regression gate: compare a run with its baseline, rule by rule, and fail once.

Each rule kind is one small class parsed from ``[tool.adrbench.gate]`` in ``pyproject.toml``;
``compute()`` measures one scenario pair into a :class:`Comparison` and ``fails()`` judges it.
A change fails only when it is *both* beyond its threshold (it matters) and significant under a
null hypothesis that includes between-process noise (it is not noise) — see :mod:`adrbench.stats`
and ``bench/gate_noise.md`` for why single-process samples cannot be trusted on their own.

Rule kinds:

* ``step_time`` — paired per-step times (same batch at the same index), optionally normalised by
  the fp32 matmul kernel timed in the same process; threshold on the median paired ratio.
* ``ratio`` — a single-valued metric from :data:`adrbench.results.metrics.METRICS` (e.g. peak RSS),
  relative change; noise from the configured per-process coefficient of variation.
* ``delta`` — a single-valued metric judged on its absolute change (e.g. STS Spearman -0.01).
* ``joint`` — speed may not be bought with accuracy: faster *and* an accuracy drop beyond the
  allowance fails.

Every comparison becomes a row; all failing rows are collected and reported together.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import tomllib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from adrbench.errors import UserError
from adrbench.results.metrics import METRICS, flatten_metrics
from adrbench.results.record import Metrics, RunRecord, ScenarioResult, Status
from adrbench.stats import median, normal_two_sided_p, process_aware_p_value, shift_test
from adrbench.units import format_bytes, parse_quantity

__all__ = [
    "DEFAULT_CONFIG",
    "RULE_KINDS",
    "Comparison",
    "DeltaRule",
    "GateConfig",
    "GateConfigError",
    "GateInputError",
    "GateReport",
    "JointRule",
    "RatioRule",
    "Row",
    "Rule",
    "StepTimeRule",
    "Verdict",
    "combine",
    "evaluate",
    "evaluate_paired",
    "for_relative",
    "load_config",
    "parse_config",
]

Normalise = Literal["matmul", "none"]
_CONFIG_SECTION = "[tool.adrbench.gate]"


class GateConfigError(UserError):
    """``[tool.adrbench.gate]`` cannot be used as written."""


class GateInputError(UserError):
    """The two runs cannot be compared (other machine, other suite) without ``--force``."""


class Verdict(enum.StrEnum):
    """The outcome of one row of the gate table."""

    PASS = "pass"
    REGRESSION = "REGRESSION"
    IMPROVEMENT = "improvement"
    FAILED = "FAILED"  # the scenario failed in the current run
    MISSING = "MISSING"  # measured in the baseline, not measured now
    NOT_COMPARABLE = "not comparable"
    NOT_MEASURED = "not measured"  # the metric is absent on this device (e.g. CUDA counters)
    SKIPPED = "skipped"
    NEW = "new"

    @property
    def fails(self) -> bool:
        return self in (Verdict.REGRESSION, Verdict.FAILED, Verdict.MISSING)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One rule applied to one scenario pair.

    Args:
        scenario: Scenario name.
        metric: Metric label shown in the table.
        baseline: Baseline value (a representative level for per-step metrics).
        current: Current value.
        change: Signed change: relative (0.12 = +12%) or absolute, per ``relative``.
        relative: Whether ``change`` and ``threshold`` are fractions of the baseline.
        threshold: The allowed change in the bad direction (positive magnitude).
        p_value: Two-sided p-value, or None where the rule has no noise model.
        lower_is_better: The bad direction is up (time, memory) rather than down (accuracy).
        worse: The change points in the bad direction.
        beyond: Its magnitude exceeds the threshold.
        significant: ``p_value < alpha`` (True where there is no noise model).
        unit: Catalogue unit of the metric, for formatting.
        message: The failure sentence (scenario, metric, rule, observed value, threshold).
        se: Standard error of the change (of its log for relative changes) under the rule's
            noise model; None where the rule has none (the threshold alone decides).
        pairs: How many pairs of processes the change is the mean of (1: one run a side).
    """

    scenario: str
    metric: str
    baseline: float | None
    current: float | None
    change: float | None
    relative: bool
    threshold: float
    p_value: float | None
    lower_is_better: bool
    worse: bool
    beyond: bool
    significant: bool
    unit: str
    message: str
    se: float | None = None
    pairs: int = 1


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 1e-4:
        return "<0.0001"
    return f"{value:.4f}"


def _p_clause(p: float, alpha: float) -> str:
    return f"p < 0.0001, alpha {alpha}" if p < 1e-4 else f"p = {p:.4f} < {alpha}"


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "s":
        return f"{value:.4g} s"
    if unit == "ratio":
        return f"{value:.4f}"
    return f"{value:.4g}"


class Rule(ABC):
    """A parsed gate rule. Subclasses are frozen dataclasses, one per ``kind``."""

    __slots__ = ()
    kind: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]

    @property
    @abstractmethod
    def label(self) -> str:
        """The metric column of the table."""

    @abstractmethod
    def describe(self) -> str:
        """One line saying what the rule checks, for the table header."""

    @abstractmethod
    def compute(self, scenario: str, baseline: Metrics, current: Metrics) -> Comparison | None:
        """Measure the change between two ``ok`` results; None when the metric is absent."""

    def fails(self, comparison: Comparison) -> bool:
        """Worse, beyond the threshold, and significant."""
        return comparison.worse and comparison.beyond and comparison.significant

    @property
    def alpha_level(self) -> float | None:
        """The rule's significance level, None for rules without a noise model."""
        return getattr(self, "alpha", None)

    def compute_pairs(
        self, scenario: str, pairs: Sequence[tuple[Metrics, Metrics]]
    ) -> Comparison | None:
        """Judge several (baseline, current) process pairs together (see :func:`combine`)."""
        found = [self.compute(scenario, b, c) for b, c in pairs]
        comparisons = [c for c in found if c is not None]
        if len(comparisons) != len(found) or not comparisons:
            return None
        return combine(comparisons, self.alpha_level)


# The noise model (process_cv) was measured from 20 A/A process pairs (bench/gate_noise.md), so it
# enters the pooled variance with their 19 degrees of freedom.
PRIOR_DF = 19


def combine(comparisons: Sequence[Comparison], alpha: float | None) -> Comparison:
    """One comparison from ``k`` pairs of processes, each measured side by side.

    The change is the mean over pairs (of the log change for relative changes). Its variance
    pools the rule's noise model (measured from 20 A/A pairs: :data:`PRIOR_DF` degrees of
    freedom) with the spread actually seen between the ``k`` pairs (``k - 1`` degrees of
    freedom), weighted by their degrees of freedom, as a moderated t-test does: pairs that
    disagree widely widen the interval, yet one pair of two cannot swamp a model measured on
    twenty. One pair is returned as it is, so the committed-baseline mode is unchanged.
    """
    if len(comparisons) == 1:
        return comparisons[0]
    first, k = comparisons[0], len(comparisons)
    values = [c.change if c.change is not None else 0.0 for c in comparisons]
    changes = [math.log1p(v) for v in values] if first.relative else values
    mean = sum(changes) / k
    observed = sum((x - mean) ** 2 for x in changes) / (k - 1)
    p_value: float | None = None
    se: float | None = None
    if all(c.se is not None for c in comparisons):
        model = sum((c.se or 0.0) ** 2 for c in comparisons) / k  # variance of one pair
        pooled = (PRIOR_DF * model + (k - 1) * observed) / (PRIOR_DF + k - 1)
        se = math.sqrt(pooled / k)
        # No noise at all: any change is real (as process_aware_p_value with zero variance).
        p_value = normal_two_sided_p(mean / se) if se > 0 else float(mean == 0)
    change = math.expm1(mean) if first.relative else mean
    levels_b = [c.baseline for c in comparisons if c.baseline is not None]
    levels_c = [c.current for c in comparisons if c.current is not None]
    baseline = median(levels_b) if levels_b else None
    current = median(levels_c) if levels_c else None
    worse = change > 0 if first.lower_is_better else change < 0
    beyond = abs(change) > first.threshold + (0.0 if first.relative else 1e-12)
    significant = p_value is None or (alpha is not None and p_value < alpha)
    verb = "rose" if change > 0 else "fell"
    amount = _pct(change) if first.relative else f"{abs(change):.4f}"
    allowed = f"{first.threshold:.1%}" if first.relative else f"{first.threshold:.4f}"
    why = (
        f" and significant ({_p_clause(p_value, alpha)})"
        if p_value is not None and alpha is not None
        else ""
    )
    message = (
        f"{first.scenario}: {first.metric} {verb} {amount} (mean of {k} interleaved pairs of "
        f"processes; {_value(baseline, first.unit)} -> {_value(current, first.unit)}), beyond "
        f"the {allowed} allowed{why}"
    )
    return Comparison(
        scenario=first.scenario,
        metric=first.metric,
        baseline=baseline,
        current=current,
        change=change,
        relative=first.relative,
        threshold=first.threshold,
        p_value=p_value,
        lower_is_better=first.lower_is_better,
        worse=worse,
        beyond=beyond,
        significant=significant,
        unit=first.unit,
        message=message,
        se=se,
        pairs=k,
    )


def _time_change(
    baseline: Metrics, current: Metrics, normalise: Normalise, process_cv: float
) -> tuple[float, float, float]:
    """Paired per-step log change (normalised if asked), its process-aware p-value and its
    standard error (within-pair sampling plus one process offset on each side)."""
    offset = 0.0
    if normalise == "matmul":
        # Step time x kernel speed is step time in units of "matmul work": a slower (busier,
        # throttled) process is slower at both, so the ratio cancels part of the process offset.
        f_b = baseline.compute.matmul_peak_flops_per_s
        f_c = current.compute.matmul_peak_flops_per_s
        if f_b > 0 and f_c > 0:
            offset = math.log(f_c / f_b)
    test = shift_test(
        current.throughput.step_times_s,
        baseline.throughput.step_times_s,
        process_sd=process_cv,
        log_offset=offset,
    )
    se = math.sqrt(test.within_se**2 + 2.0 * process_cv**2)
    return test.log_change, test.p_value, se


@dataclass(frozen=True, slots=True)
class StepTimeRule(Rule):
    """Training step time from the raw per-step samples.

    Args:
        max_increase: Allowed relative increase of the (normalised) median paired step ratio.
        process_cv: Between-process CV of that ratio's log on this machine (from the noise study).
        normalise: ``matmul`` divides by the in-process matmul calibration kernel; ``none`` not.
        alpha: Significance level.
    """

    kind: ClassVar[str] = "step_time"
    keys: ClassVar[tuple[str, ...]] = ("max_increase", "process_cv", "normalise", "alpha")
    max_increase: float
    process_cv: float
    normalise: Normalise
    alpha: float

    @property
    def label(self) -> str:
        return "step_time_s"

    def describe(self) -> str:
        how = "normalised by the in-process matmul kernel" if self.normalise == "matmul" else "raw"
        return (
            f"step_time_s: median paired per-step ratio ({how}); fails above "
            f"{_pct(self.max_increase)} with p < {self.alpha} (process cv {self.process_cv:.1%})"
        )

    def compute(self, scenario: str, baseline: Metrics, current: Metrics) -> Comparison | None:
        b_times, c_times = baseline.throughput.step_times_s, current.throughput.step_times_s
        if not b_times or not c_times:
            return None
        log_change, p, se = _time_change(baseline, current, self.normalise, self.process_cv)
        change = math.expm1(log_change)
        b_level, c_level = median(b_times), median(c_times)
        significant = p < self.alpha
        message = (
            f"{scenario}: step_time_s rose {_pct(change)} ({_value(b_level, 's')} -> "
            f"{_value(c_level, 's')} median step), beyond the {_pct(self.max_increase)} allowed "
            f"and significant ({_p_clause(p, self.alpha)})"
        )
        return Comparison(
            scenario=scenario,
            metric=self.label,
            baseline=b_level,
            current=c_level,
            change=change,
            relative=True,
            threshold=self.max_increase,
            p_value=p,
            lower_is_better=True,
            worse=change > 0,
            beyond=abs(change) > self.max_increase,
            significant=significant,
            unit="s",
            message=message,
            se=se,
        )


@dataclass(frozen=True, slots=True)
class RatioRule(Rule):
    """Relative change of a single-valued catalogue metric (one value per process).

    Args:
        metric: Name in :data:`adrbench.results.metrics.METRICS`.
        max_change: Allowed relative change in the bad direction.
        process_cv: Between-process CV of the metric (0: deterministic, any change is real).
        lower_is_better: Direction (from the catalogue unless configured).
        alpha: Significance level.
    """

    kind: ClassVar[str] = "ratio"
    keys: ClassVar[tuple[str, ...]] = ("metric", "max_change", "process_cv", "direction", "alpha")
    metric: str
    max_change: float
    process_cv: float
    lower_is_better: bool
    alpha: float

    @property
    def label(self) -> str:
        return self.metric

    def describe(self) -> str:
        bad = "rise" if self.lower_is_better else "fall"
        return (
            f"{self.metric}: fails on a {bad} beyond {self.max_change:.1%} with p < {self.alpha} "
            f"(process cv {self.process_cv:.1%})"
        )

    def compute(self, scenario: str, baseline: Metrics, current: Metrics) -> Comparison | None:
        b = flatten_metrics(baseline).get(self.metric)
        c = flatten_metrics(current).get(self.metric)
        if b is None or c is None or b <= 0 or c <= 0:
            return None
        log_change = math.log(c / b)
        change = math.expm1(log_change)
        p = process_aware_p_value(log_change, 0.0, self.process_cv)
        worse = change > 0 if self.lower_is_better else change < 0
        unit = METRICS[self.metric].unit
        verb = "rose" if change > 0 else "fell"
        message = (
            f"{scenario}: {self.metric} {verb} {_pct(change)} ({_value(b, unit)} -> "
            f"{_value(c, unit)}), beyond the {self.max_change:.1%} allowed and significant "
            f"({_p_clause(p, self.alpha)})"
        )
        return Comparison(
            scenario=scenario,
            metric=self.metric,
            baseline=b,
            current=c,
            change=change,
            relative=True,
            threshold=self.max_change,
            p_value=p,
            lower_is_better=self.lower_is_better,
            worse=worse,
            beyond=abs(change) > self.max_change,
            significant=p < self.alpha,
            unit=unit,
            message=message,
            se=math.sqrt(2.0) * self.process_cv,
        )


@dataclass(frozen=True, slots=True)
class DeltaRule(Rule):
    """Absolute change of a single-valued catalogue metric, e.g. STS Spearman.

    Args:
        metric: Name in :data:`adrbench.results.metrics.METRICS`.
        max_change: Allowed absolute change in the bad direction.
        noise_sd: Between-process SD of the metric (0: no noise model, the threshold decides).
        lower_is_better: Direction (from the catalogue unless configured).
        alpha: Significance level (used only with ``noise_sd``).
    """

    kind: ClassVar[str] = "delta"
    keys: ClassVar[tuple[str, ...]] = ("metric", "max_change", "noise_sd", "direction", "alpha")
    metric: str
    max_change: float
    noise_sd: float
    lower_is_better: bool
    alpha: float

    @property
    def label(self) -> str:
        return self.metric

    def describe(self) -> str:
        bad = "rise" if self.lower_is_better else "drop"
        noise = f"p < {self.alpha}" if self.noise_sd > 0 else "no noise model: threshold only"
        return f"{self.metric}: fails on a {bad} beyond {self.max_change:.4f} ({noise})"

    def compute(self, scenario: str, baseline: Metrics, current: Metrics) -> Comparison | None:
        b = flatten_metrics(baseline).get(self.metric)
        c = flatten_metrics(current).get(self.metric)
        if b is None or c is None:
            return None
        change = c - b
        p = None
        if self.noise_sd > 0:
            p = normal_two_sided_p(change / (math.sqrt(2.0) * self.noise_sd))
        worse = change > 0 if self.lower_is_better else change < 0
        verb = "rose" if change > 0 else "fell"
        why = f" and significant ({_p_clause(p, self.alpha)})" if p is not None else ""
        message = (
            f"{scenario}: {self.metric} {verb} {abs(change):.4f} ({b:.4f} -> {c:.4f}), beyond "
            f"the {self.max_change:.4f} allowed{why}"
        )
        return Comparison(
            scenario=scenario,
            metric=self.metric,
            baseline=b,
            current=c,
            change=change,
            relative=False,
            threshold=self.max_change,
            p_value=p,
            lower_is_better=self.lower_is_better,
            worse=worse,
            beyond=abs(change) > self.max_change + 1e-12,  # 0.85 - 0.84 is not "beyond 0.01"
            significant=p is None or p < self.alpha,
            unit=METRICS[self.metric].unit,
            message=message,
            se=math.sqrt(2.0) * self.noise_sd if self.noise_sd > 0 else None,
        )


@dataclass(frozen=True, slots=True)
class JointRule(Rule):
    """Speed may not be bought with accuracy: faster *and* an accuracy drop beyond the allowance.

    Args:
        accuracy: Accuracy metric (higher is better), e.g. ``test_spearman``.
        max_decrease: Accuracy drop allowed for a faster run.
        normalise: How step times are compared (as in ``step_time``).
        process_cv: As in ``step_time``; reported, the speed side does not need significance.
    """

    kind: ClassVar[str] = "joint"
    keys: ClassVar[tuple[str, ...]] = ("accuracy", "max_decrease", "normalise", "process_cv")
    accuracy: str
    max_decrease: float
    normalise: Normalise
    process_cv: float

    @property
    def label(self) -> str:
        return f"step_time_s+{self.accuracy}"

    def describe(self) -> str:
        return (
            f"{self.label}: a faster run may lose at most {self.max_decrease:.4f} {self.accuracy}"
        )

    def compute(self, scenario: str, baseline: Metrics, current: Metrics) -> Comparison | None:
        return self.compute_pairs(scenario, [(baseline, current)])

    def compute_pairs(
        self, scenario: str, pairs: Sequence[tuple[Metrics, Metrics]]
    ) -> Comparison | None:
        """Mean accuracy and mean log step-time change over the pairs, judged together."""
        accuracy: list[tuple[float, float]] = []
        log_changes: list[float] = []
        for baseline, current in pairs:
            b = flatten_metrics(baseline).get(self.accuracy)
            c = flatten_metrics(current).get(self.accuracy)
            if b is None or c is None:
                return None
            if not baseline.throughput.step_times_s or not current.throughput.step_times_s:
                return None
            log_change, _p_speed, _se = _time_change(
                baseline, current, self.normalise, self.process_cv
            )
            accuracy.append((b, c))
            log_changes.append(log_change)
        if not accuracy:
            return None
        k = len(accuracy)
        b = sum(x for x, _ in accuracy) / k
        c = sum(y for _, y in accuracy) / k
        log_change = sum(log_changes) / k
        faster = log_change < 0
        drop = b - c
        over = f" (mean of {k} interleaved pairs)" if k > 1 else ""
        message = (
            f"{scenario}: step time changed {_pct(math.expm1(log_change))} (faster) but "
            f"{self.accuracy} fell {drop:.4f} ({b:.4f} -> {c:.4f}){over}, more than the "
            f"{self.max_decrease:.4f} allowed for a faster run; speed may not be bought with "
            "accuracy"
        )
        return Comparison(
            scenario=scenario,
            metric=self.label,
            baseline=b,
            current=c,
            change=c - b,
            relative=False,
            threshold=self.max_decrease,
            p_value=None,  # judged on the accuracy change, which has no noise model
            lower_is_better=False,
            worse=faster and drop > 0,
            beyond=drop > self.max_decrease + 1e-12,
            significant=True,  # the accuracy side has no noise model; any speed gain counts
            unit="ratio",
            message=message,
            pairs=k,
        )


RULE_KINDS: Mapping[str, type[Rule]] = {
    cls.kind: cls for cls in (StepTimeRule, RatioRule, DeltaRule, JointRule)
}


@dataclass(frozen=True, slots=True)
class GateConfig:
    """The parsed ``[tool.adrbench.gate]`` section.

    Args:
        alpha: Default significance level for rules that do not set their own.
        rules: The rules, in table order.
        source: Where it came from (a file, or "built-in defaults").
    """

    alpha: float
    rules: tuple[Rule, ...]
    source: str


# --- parsing ---------------------------------------------------------------------------------


class _Table:
    """Reads one rule table, remembering which keys were used so unknown ones are reported."""

    def __init__(self, data: Mapping[str, Any], where: str, known: Sequence[str]) -> None:
        self.data, self.where = data, where
        for key in data:
            if key != "kind" and key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
                raise GateConfigError(f"{where}: unknown key {key!r}{hint}")

    def fraction(self, key: str, default: float | None = None) -> float:
        """A non-negative fraction written as ``"8%"`` or ``0.08``."""
        value = self.data.get(key, default)
        if value is None:
            raise GateConfigError(f'{self.where}: missing {key!r}, e.g. {key} = "8%"')
        try:
            number = parse_quantity(value) if isinstance(value, str) else value
        except ValueError as error:
            raise GateConfigError(f"{self.where}: {key}={value!r}: {error}") from None
        if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
            raise GateConfigError(
                f"{self.where}: {key}={value!r} must be a non-negative number or percentage, "
                'e.g. "8%" or 0.08'
            )
        return float(number)

    def metric(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str):
            raise GateConfigError(f'{self.where}: missing {key!r}, e.g. {key} = "peak_rss_bytes"')
        if value not in METRICS:
            close = difflib.get_close_matches(value, list(METRICS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise GateConfigError(f"{self.where}: {key}={value!r} is not a known metric{hint}")
        return value

    def lower_is_better(self, metric: str) -> bool:
        value = self.data.get("direction")
        if value is None:
            better = METRICS[metric].greater_is_better
            if better is None:
                raise GateConfigError(
                    f"{self.where}: metric {metric!r} has no better direction in the catalogue; "
                    'add direction = "lower_is_better" or "higher_is_better"'
                )
            return not better
        if value not in ("lower_is_better", "higher_is_better"):
            raise GateConfigError(
                f'{self.where}: direction={value!r} must be "lower_is_better" or "higher_is_better"'
            )
        return bool(value == "lower_is_better")

    def normalise(self) -> Normalise:
        value = self.data.get("normalise", "matmul")
        if value not in ("matmul", "none"):
            raise GateConfigError(f'{self.where}: normalise={value!r} must be "matmul" or "none"')
        return "matmul" if value == "matmul" else "none"

    def alpha(self, default: float) -> float:
        value = self.data.get("alpha", default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise GateConfigError(f"{self.where}: alpha={value!r} must be between 0 and 1")
        return float(value)


def _parse_rule(data: Mapping[str, Any], where: str, alpha: float) -> Rule:
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in RULE_KINDS:
        kinds = ", ".join(repr(k) for k in RULE_KINDS)
        raise GateConfigError(f"{where}: kind={kind!r} is not a rule kind; choose one of {kinds}")
    cls = RULE_KINDS[kind]
    table = _Table(data, f"{where} (kind {kind!r})", cls.keys)
    if cls is StepTimeRule:
        return StepTimeRule(
            max_increase=table.fraction("max_increase"),
            process_cv=table.fraction("process_cv", 0.0),
            normalise=table.normalise(),
            alpha=table.alpha(alpha),
        )
    if cls is RatioRule:
        metric = table.metric("metric")
        return RatioRule(
            metric=metric,
            max_change=table.fraction("max_change"),
            process_cv=table.fraction("process_cv", 0.0),
            lower_is_better=table.lower_is_better(metric),
            alpha=table.alpha(alpha),
        )
    if cls is DeltaRule:
        metric = table.metric("metric")
        return DeltaRule(
            metric=metric,
            max_change=table.fraction("max_change"),
            noise_sd=table.fraction("noise_sd", 0.0),
            lower_is_better=table.lower_is_better(metric),
            alpha=table.alpha(alpha),
        )
    accuracy = table.metric("accuracy")
    if table.lower_is_better(accuracy):
        raise GateConfigError(f"{where}: accuracy={accuracy!r} must be a higher-is-better metric")
    return JointRule(
        accuracy=accuracy,
        max_decrease=table.fraction("max_decrease"),
        normalise=table.normalise(),
        process_cv=table.fraction("process_cv", 0.0),
    )


def parse_config(section: Mapping[str, Any], source: str) -> GateConfig:
    """Build a :class:`GateConfig` from the ``[tool.adrbench.gate]`` table.

    Args:
        section: The table's contents (``alpha`` and an array of ``rules`` tables).
        source: File name for messages.

    Raises:
        GateConfigError: naming the file, the rule, the key and the fix.
    """
    where = f"{source}: {_CONFIG_SECTION}"
    for key in section:
        if key not in ("alpha", "rules"):
            close = difflib.get_close_matches(key, ["alpha", "rules"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; known: alpha, rules"
            raise GateConfigError(f"{where}: unknown key {key!r}{hint}")
    alpha = _Table(section, where, ("alpha", "rules")).alpha(0.01)
    rules_data = section.get("rules")
    if not isinstance(rules_data, list) or not rules_data:
        raise GateConfigError(
            f"{where}: no rules; add [[tool.adrbench.gate.rules]] tables (see "
            "docs/reference/gate-rules.md)"
        )
    rules = []
    for i, data in enumerate(rules_data, start=1):
        if not isinstance(data, Mapping):
            raise GateConfigError(f"{where} rules[{i}]: expected a table, got {data!r}")
        rules.append(_parse_rule(data, f"{source}: [[tool.adrbench.gate.rules]] #{i}", alpha))
    return GateConfig(alpha=alpha, rules=tuple(rules), source=source)


# The same rules as the documented section in this repository's pyproject.toml; used when the
# project being gated has no section of its own.
DEFAULT_CONFIG = GateConfig(
    alpha=0.01,
    rules=(
        StepTimeRule(max_increase=0.08, process_cv=0.02, normalise="matmul", alpha=0.01),
        RatioRule(
            metric="train_peak_anon_rss_bytes",
            max_change=0.05,
            process_cv=0.01,
            lower_is_better=True,
            alpha=0.01,
        ),
        DeltaRule(
            metric="test_spearman",
            max_change=0.01,
            noise_sd=0.0,
            lower_is_better=False,
            alpha=0.01,
        ),
        JointRule(accuracy="test_spearman", max_decrease=0.01, normalise="matmul", process_cv=0.02),
    ),
    source="built-in defaults",
)


def for_relative(config: GateConfig) -> GateConfig:
    """The rules as the relative mode applies them: step times compared raw.

    The matmul-kernel normalisation corrects for a machine that runs slower or faster than on the
    day the baseline was recorded. Interleaved sides share the machine and its state, so there
    it only adds the kernel's own noise: a calibration disturbed for half a second moved an A/A
    pair by +6% in the relative noise study (bench/gate_noise.md).
    """
    rules = tuple(
        dataclasses.replace(rule, normalise="none")
        if isinstance(rule, StepTimeRule | JointRule)
        else rule
        for rule in config.rules
    )
    return dataclasses.replace(config, rules=rules)


def load_config(path: Path) -> GateConfig:
    """Read ``[tool.adrbench.gate]`` from ``path``; built-in defaults when it has none.

    Args:
        path: A ``pyproject.toml``.

    Raises:
        GateConfigError: unreadable TOML (with line and column) or an invalid section.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DEFAULT_CONFIG
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise GateConfigError(f"{path}: not valid TOML ({error})") from None
    section = data.get("tool", {}).get("adrbench", {}).get("gate")
    if section is None:
        return DEFAULT_CONFIG
    if not isinstance(section, Mapping):
        raise GateConfigError(f"{path}: {_CONFIG_SECTION} must be a table")
    return parse_config(section, str(path))


# --- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the gate table.

    Args:
        scenario: Scenario name.
        metric: Metric label, or "—" for scenario-level rows.
        baseline: Formatted baseline value.
        current: Formatted current value.
        change: Formatted change.
        threshold: Formatted threshold.
        p_value: Two-sided p-value, if the rule has one.
        verdict: The outcome.
        message: Why it fails (or why nothing was compared); None for plain rows.
    """

    scenario: str
    metric: str
    baseline: str
    current: str
    change: str
    threshold: str
    p_value: float | None
    verdict: Verdict
    message: str | None = None


@dataclass(frozen=True, slots=True)
class GateReport:
    """Everything the gate found.

    Args:
        baseline_run: Run id of the baseline.
        baseline_source: Where the baseline came from (a file path).
        current_run: Run id of the current run.
        environment: Environment fingerprint of the current run.
        forced: Compared across environments/suites with ``--force``.
        rules: One-line descriptions of the rules applied.
        rows: Every comparison.
        notes: What the reader should know about the comparison as a whole (e.g. a baseline
            measured on another boot).
        pairs: Pairs of processes compared (1 in the committed-baseline mode).
    """

    baseline_run: str
    baseline_source: str
    current_run: str
    environment: str
    forced: bool
    rules: tuple[str, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = ()
    pairs: int = 1

    @property
    def failures(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.verdict.fails)

    @property
    def passed(self) -> bool:
        return not self.failures


def _comparison_row(rule: Rule, comparison: Comparison) -> Row:
    if rule.fails(comparison):
        verdict = Verdict.REGRESSION
    elif comparison.beyond and comparison.significant and not comparison.worse:
        verdict = Verdict.IMPROVEMENT
    else:
        verdict = Verdict.PASS
    if comparison.change is None:
        change = "—"
    elif comparison.relative:
        change = _pct(comparison.change)
    else:
        change = f"{comparison.change:+.4f}"
    if isinstance(rule, JointRule):
        threshold = f"faster: -{comparison.threshold:.4f}"
        baseline, current = f"{comparison.baseline:.4f}", f"{comparison.current:.4f}"
    else:
        bad = "+" if comparison.lower_is_better else "-"
        if comparison.relative:
            threshold = f"{bad}{comparison.threshold * 100:.1f}%"
        else:
            threshold = f"{bad}{comparison.threshold:.4f}"
        baseline = _value(comparison.baseline, comparison.unit)
        current = _value(comparison.current, comparison.unit)
    return Row(
        scenario=comparison.scenario,
        metric=comparison.metric,
        baseline=baseline,
        current=current,
        change=change,
        threshold=threshold,
        p_value=comparison.p_value,
        verdict=verdict,
        message=comparison.message if verdict is Verdict.REGRESSION else None,
    )


def _scenario_row(name: str, verdict: Verdict, message: str | None) -> Row:
    return Row(name, "—", "—", "—", "—", "—", None, verdict, message)


def _describe_outcome(result: ScenarioResult) -> str:
    if result.failure is not None:
        return f"{result.failure.type}: {result.failure.message}"
    if result.skip is not None:
        return f"{result.skip.reason}: {result.skip.message}"
    return result.status.value


def _first_failed(results: Sequence[ScenarioResult]) -> ScenarioResult | None:
    return next((r for r in results if r.status is Status.FAILED), None)


def _rows_for(
    name: str,
    baselines: Sequence[ScenarioResult | None],
    currents: Sequence[ScenarioResult | None],
    config: GateConfig,
    current_run: str,
    *,
    relative: bool,
) -> list[Row]:
    """The rows of one scenario over every pair of runs (one pair in the committed mode)."""
    if any(c is None for c in currents):
        return [
            _scenario_row(
                name,
                Verdict.MISSING,
                f"{name}: in the baseline but not in current run {current_run}; run the whole "
                "suite, or update the baseline if the scenario was removed on purpose",
            )
        ]
    if any(b is None for b in baselines):
        return [_scenario_row(name, Verdict.NEW, None)]
    base = [b for b in baselines if b is not None]
    cur = [c for c in currents if c is not None]
    canceled = next((c for c in cur if c.status is Status.CANCELED), None)
    if canceled is not None:
        return [
            _scenario_row(
                name,
                Verdict.MISSING,
                f"{name}: canceled in current run {current_run} ({_describe_outcome(canceled)}); "
                "an interrupted run measured nothing here to gate — rerun the suite",
            )
        ]
    failed = _first_failed(cur)
    if failed is not None:
        return [
            _scenario_row(
                name,
                Verdict.FAILED,
                f"{name}: failed in current run {current_run} ({_describe_outcome(failed)}); "
                f"it was {base[0].status.value} in the baseline",
            )
        ]
    notes: list[str] = []
    prints_b = {b.fingerprint for b in base}
    prints_c = {c.fingerprint for c in cur}
    if prints_b != prints_c:
        if not relative:
            return [
                _scenario_row(
                    name,
                    Verdict.NOT_COMPARABLE,
                    f"{name}: the benchmark definition changed (fingerprint "
                    f"{base[0].fingerprint} -> {cur[0].fingerprint}); not compared — update the "
                    "baseline (adrbench baseline update)",
                )
            ]
        # Both sides ran the same suite file: a different fingerprint means REF's code resolves
        # the scenario differently (a changed default), which is part of the change under test.
        notes.append(
            f"{name}: REF and the working tree resolve the same suite entry differently "
            f"(fingerprint {base[0].fingerprint} -> {cur[0].fingerprint}); compared anyway, as "
            "part of the change"
        )
    if any(c.status is Status.SKIPPED for c in cur):
        skipped = next(c for c in cur if c.status is Status.SKIPPED)
        if any(b.status is Status.OK for b in base):
            return [
                _scenario_row(
                    name,
                    Verdict.MISSING,
                    f"{name}: skipped in current run {current_run} "
                    f"({_describe_outcome(skipped)}) but measured in the baseline",
                )
            ]
        return [_scenario_row(name, Verdict.SKIPPED, None)]
    if any(b.status is not Status.OK or b.metrics is None for b in base):
        bad = next(b for b in base if b.status is not Status.OK or b.metrics is None)
        return [
            _scenario_row(
                name,
                Verdict.NOT_COMPARABLE,
                f"{name}: {bad.status.value} in the baseline, nothing to compare with",
            )
        ]
    pairs = []
    for b, c in zip(base, cur, strict=True):
        assert b.metrics is not None and c.metrics is not None  # status ok carries metrics
        pairs.append((b.metrics, c.metrics))
    rows = []
    for rule in config.rules:
        comparison = rule.compute_pairs(name, pairs)
        if comparison is None:
            rows.append(Row(name, rule.label, "—", "—", "—", "—", None, Verdict.NOT_MEASURED, None))
        else:
            rows.append(_comparison_row(rule, comparison))
    if notes:
        first = rows[0]
        if not first.verdict.fails:
            rows[0] = dataclasses.replace(first, message="; ".join(notes))
    return rows


def _boot_note(baseline: RunRecord, current: RunRecord) -> str | None:
    b_boot, c_boot = baseline.environment.boot_id, current.environment.boot_id
    if c_boot is None or b_boot == c_boot:  # same boot, or this platform records none
        return None
    where = "an unrecorded boot" if b_boot is None else f"another boot ({b_boot[:8]})"
    return (
        f"the baseline (run {baseline.run_id}, {baseline.started_at[:10]}) was measured on "
        f"{where} of a machine with this fingerprint; such machines have differed by up to ~13% "
        "in step time from one session to the next, so a time verdict here may be the machine, "
        "not the change: `adrbench gate --against REF` measures both sides in this job"
    )


def evaluate(
    baseline: RunRecord,
    current: RunRecord,
    config: GateConfig,
    *,
    baseline_source: str,
    force: bool = False,
) -> GateReport:
    """Compare every scenario and rule of one run with its committed baseline.

    Args:
        baseline: The baseline run.
        current: The run under test.
        config: The rules.
        baseline_source: Where the baseline came from, for messages.
        force: Compare even across environment fingerprints, suites or profiles.

    Raises:
        GateInputError: the runs come from different machines (or suites/profiles) and
            ``force`` is False.
    """
    b_env, c_env = baseline.environment.fingerprint, current.environment.fingerprint
    if b_env != c_env and not force:
        raise GateInputError(
            f"{baseline_source}: baseline run {baseline.run_id} was measured on environment "
            f"{b_env!r} but current run {current.run_id} on {c_env!r}; timings from different "
            f"machines are not comparable — record a baseline for this machine with `adrbench "
            f"baseline update --run {current.run_id}` (and commit it), or pass --force"
        )
    if (baseline.suite, baseline.profile) != (current.suite, current.profile) and not force:
        raise GateInputError(
            f"{baseline_source}: baseline run {baseline.run_id} is suite {baseline.suite!r} "
            f"profile {baseline.profile!r} but current run {current.run_id} is suite "
            f"{current.suite!r} profile {current.profile!r}; compare runs of the same suite and "
            "profile, or pass --force"
        )
    report = evaluate_paired(
        [baseline], [current], config, baseline_source=baseline_source, relative=False
    )
    boot = _boot_note(baseline, current) if b_env == c_env else None
    return dataclasses.replace(
        report,
        forced=force and (b_env != c_env),
        notes=report.notes + ((boot,) if boot else ()),
    )


def evaluate_paired(
    baselines: Sequence[RunRecord],
    currents: Sequence[RunRecord],
    config: GateConfig,
    *,
    baseline_source: str,
    relative: bool = True,
) -> GateReport:
    """Compare runs pair by pair (``baselines[i]`` with ``currents[i]``), every scenario and rule.

    In the relative mode both sides ran here, interleaved, from one suite file: machine and
    suite need no check, and a scenario whose fingerprint differs between the sides is compared
    with a note (REF's code resolves it differently, which is part of the change).

    Raises:
        GateInputError: no runs, unequal numbers of runs, or no scenario in common.
    """
    if not baselines or len(baselines) != len(currents):
        raise GateInputError(
            f"{baseline_source}: {len(baselines)} baseline run(s) and {len(currents)} current "
            "run(s); the gate compares runs in pairs"
        )
    b_maps = [{r.name: r for r in run.scenarios} for run in baselines]
    c_maps = [{r.name: r for r in run.scenarios} for run in currents]
    names = list(b_maps[0]) + [n for n in c_maps[0] if n not in b_maps[0]]
    if relative and not set(b_maps[0]) & set(c_maps[0]):
        raise GateInputError(
            f"{baseline_source}: REF's runs ({', '.join(sorted(b_maps[0]))}) and the working "
            f"tree's ({', '.join(sorted(c_maps[0]))}) have no scenario in common; nothing to "
            "compare"
        )
    current_ids = ", ".join(r.run_id for r in currents)
    rows: list[Row] = []
    for name in names:
        rows.extend(
            _rows_for(
                name,
                [m.get(name) for m in b_maps],
                [m.get(name) for m in c_maps],
                config,
                current_ids,
                relative=relative,
            )
        )
    return GateReport(
        baseline_run=", ".join(r.run_id for r in baselines),
        baseline_source=baseline_source,
        current_run=current_ids,
        environment=currents[0].environment.fingerprint,
        forced=False,
        rules=tuple(rule.describe() for rule in config.rules),
        rows=tuple(rows),
        pairs=len(currents),
    )
