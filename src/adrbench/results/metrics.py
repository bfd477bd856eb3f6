"""The catalogue of named metrics a scenario result exposes, with unit and direction.

One flat namespace (``samples_per_s``, ``peak_rss_bytes``, ``test_spearman`` ...) serves the
trigger expressions (``results.lora.peak_rss_bytes``), the report tables and the gate, so a
metric has one name, one unit and one "better" direction everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from adrbench.results.record import Metrics, MetricSummary, ScenarioResult, Serving, Status
from adrbench.stats import estimate

__all__ = [
    "METRICS",
    "SERVING_METRICS",
    "MetricSpec",
    "flatten_metrics",
    "flatten_result",
    "flatten_serving",
    "process_noise_sd",
    "quantile",
    "summarize",
]

Unit = Literal[
    "count", "samples/s", "sentences/s", "tokens/s", "bytes", "s", "ratio", "FLOP/s", "loss"
]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    unit: Unit
    greater_is_better: bool | None  # None: neither direction is a regression (e.g. parameters)
    help: str


def _spec(name: str, unit: Unit, better: bool | None, help: str) -> tuple[str, MetricSpec]:
    return name, MetricSpec(name, unit, better, help)


METRICS: Mapping[str, MetricSpec] = dict(
    [
        _spec("total_parameters", "count", None, "all parameters of the model"),
        _spec("trainable_parameters", "count", None, "parameters that receive gradients"),
        _spec("trainable_fraction", "ratio", None, "trainable / total parameters"),
        _spec("steps", "count", None, "optimizer steps taken"),
        _spec("final_loss", "loss", False, "training loss of the last step"),
        _spec("samples_per_s", "samples/s", True, "training pairs per second over timed steps"),
        _spec("real_tokens_per_s", "tokens/s", True, "non-padding tokens per second"),
        _spec("padded_tokens_per_s", "tokens/s", True, "tokens incl. padding per second"),
        _spec("step_time_s", "s", False, "mean seconds per timed step"),
        _spec(
            "peak_memory_bytes",
            "bytes",
            False,
            "the device's principal peak memory (CUDA max allocated, MPS allocation, CPU train "
            "RSS); its counter is peak_memory_source",
        ),
        _spec("rss_before_train_bytes", "bytes", False, "process RSS before training"),
        _spec("peak_rss_bytes", "bytes", False, "process RSS high-water mark"),
        _spec("train_peak_rss_bytes", "bytes", False, "RSS high-water mark during training"),
        _spec("train_rss_increase_bytes", "bytes", False, "train peak RSS minus RSS before"),
        _spec(
            "train_peak_anon_rss_bytes",
            "bytes",
            False,
            "peak anonymous RSS during training (no file pages; sampled three times a step)",
        ),
        _spec("cuda_max_allocated_bytes", "bytes", False, "torch.cuda.max_memory_allocated"),
        _spec("cuda_max_reserved_bytes", "bytes", False, "torch.cuda.max_memory_reserved"),
        _spec("mps_sampled_max_allocated_bytes", "bytes", False, "max sampled MPS allocation"),
        _spec("train_flops_per_s", "FLOP/s", True, "achieved training FLOP/s"),
        _spec("matmul_peak_flops_per_s", "FLOP/s", None, "matmul peak measured in-process"),
        _spec("fraction_of_peak", "ratio", True, "train FLOP/s / matmul peak"),
        _spec(
            "real_token_flops_per_s",
            "FLOP/s",
            True,
            "training FLOP/s counting real (non-pad) tokens only: the useful work",
        ),
        _spec(
            "real_token_fraction_of_peak",
            "ratio",
            True,
            "real-token FLOP/s / matmul peak of the scenario's dtype",
        ),
        _spec("padding_fraction", "ratio", False, "share of the timed tokens that are padding"),
        _spec("load_s", "s", False, "wall time to load model and data"),
        _spec("train_s", "s", False, "wall time of training"),
        _spec("evaluate_s", "s", False, "wall time of evaluation"),
        _spec("dev_spearman", "ratio", True, "STS-B dev Spearman after training"),
        _spec("dev_pearson", "ratio", True, "STS-B dev Pearson after training"),
        _spec("test_spearman", "ratio", True, "STS-B test Spearman after training"),
        _spec("test_pearson", "ratio", True, "STS-B test Pearson after training"),
        _spec("dev_spearman_before", "ratio", None, "STS-B dev Spearman, untrained"),
        _spec("dev_pearson_before", "ratio", None, "STS-B dev Pearson, untrained"),
        _spec("test_spearman_before", "ratio", None, "STS-B test Spearman, untrained"),
        _spec("test_pearson_before", "ratio", None, "STS-B test Pearson, untrained"),
        # Serving scenarios (``serve`` set; :class:`~adrbench.results.record.Serving`).
        _spec("served_variants", "count", None, "variants served: adapters, or merged copies"),
        _spec("resident_parameters", "count", None, "parameters held for all served variants"),
        _spec(
            "base_memory_bytes",
            "bytes",
            False,
            "resident memory with the base model alone loaded (anonymous RSS on a CPU, CUDA / "
            "MPS allocated on a GPU)",
        ),
        _spec(
            "resident_memory_bytes",
            "bytes",
            False,
            "resident memory with every variant loaded and used once (same counter)",
        ),
        _spec(
            "added_memory_bytes",
            "bytes",
            False,
            "resident memory the variants add to the base alone (resident minus base)",
        ),
        _spec("serve_peak_memory_bytes", "bytes", False, "highest reading while serving"),
        _spec("swap_p50_s", "s", False, "median seconds to make another variant active"),
        _spec("swap_p99_s", "s", False, "99th percentile of the swap time"),
        _spec("encode_p50_s", "s", False, "median seconds of a request on one variant"),
        _spec("encode_p99_s", "s", False, "99th percentile of a request on one variant"),
        _spec("encode_sentences_per_s", "sentences/s", True, "sentences per second on one variant"),
        _spec("encode_swap_p50_s", "s", False, "median seconds of a swap plus a request"),
        _spec("encode_swap_p99_s", "s", False, "99th percentile of a swap plus a request"),
        _spec(
            "encode_swap_sentences_per_s",
            "sentences/s",
            True,
            "sentences per second when every request goes to another variant (swap included)",
        ),
    ]
)

# The metrics only serving scenarios have (training scenarios have the others).
SERVING_METRICS = frozenset(list(METRICS)[list(METRICS).index("served_variants") :])


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` by linear interpolation between order statistics (the
    default of numpy and R, type 7)."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def flatten_serving(serving: Serving) -> dict[str, float]:
    """Every serving metric of one serving result (see :data:`SERVING_METRICS`)."""
    flat: dict[str, float] = {
        "served_variants": serving.adapters,
        "resident_parameters": serving.resident_parameters,
        "base_memory_bytes": serving.base_bytes,
        "resident_memory_bytes": serving.resident_bytes,
        "added_memory_bytes": serving.resident_bytes - serving.base_bytes,
        "serve_peak_memory_bytes": serving.serve_peak_bytes,
        "load_s": serving.load_s,
    }
    for prefix, times in (
        ("swap", serving.swap_times_s),
        ("encode", serving.encode_times_s),
        ("encode_swap", serving.encode_swap_times_s),
    ):
        if times:
            flat[f"{prefix}_p50_s"] = quantile(times, 0.5)
            flat[f"{prefix}_p99_s"] = quantile(times, 0.99)
    for prefix, times in (
        ("encode", serving.encode_times_s),
        ("encode_swap", serving.encode_swap_times_s),
    ):
        if times:
            flat[f"{prefix}_sentences_per_s"] = serving.request_batch * len(times) / sum(times)
    return {k: float(v) for k, v in flat.items()}


def flatten_result(result: ScenarioResult) -> dict[str, float]:
    """Every catalogued metric an ok result has: a training result's or a serving result's."""
    if result.metrics is not None:
        return flatten_metrics(result.metrics)
    if result.serving is not None:
        return flatten_serving(result.serving)
    return {}


def flatten_metrics(metrics: Metrics) -> dict[str, float]:
    """Every catalogued metric that this result has (``None`` counters are left out)."""
    t, m, c, p = metrics.throughput, metrics.memory, metrics.compute, metrics.phases
    timed = len(t.step_times_s)
    # The FLOP count is linear in tokens, so FLOP/s on real tokens is the padded figure scaled by
    # the real share of the timed tokens (both are stored per step).
    padded_tokens = sum(t.step_padded_tokens)
    real_share = sum(t.step_real_tokens) / padded_tokens if padded_tokens else None
    flat: dict[str, float | int | None] = {
        "total_parameters": metrics.total_parameters,
        "trainable_parameters": metrics.trainable_parameters,
        "trainable_fraction": metrics.trainable_parameters / metrics.total_parameters,
        "steps": metrics.steps,
        "final_loss": metrics.final_loss,
        "samples_per_s": t.samples_per_s,
        "real_tokens_per_s": t.real_tokens_per_s,
        "padded_tokens_per_s": t.padded_tokens_per_s,
        "step_time_s": sum(t.step_times_s) / timed if timed else None,
        "peak_memory_bytes": m.peak_memory_bytes,
        "rss_before_train_bytes": m.rss_before_train_bytes,
        "peak_rss_bytes": m.peak_rss_bytes,
        "train_peak_rss_bytes": m.train_peak_rss_bytes,
        "train_peak_anon_rss_bytes": m.train_peak_anon_rss_bytes,
        "train_rss_increase_bytes": (
            m.train_peak_rss_bytes - m.rss_before_train_bytes
            if m.train_peak_rss_bytes is not None
            else None
        ),
        "cuda_max_allocated_bytes": m.cuda_max_allocated_bytes,
        "cuda_max_reserved_bytes": m.cuda_max_reserved_bytes,
        "mps_sampled_max_allocated_bytes": m.mps_sampled_max_allocated_bytes,
        "train_flops_per_s": c.train_flops_per_s,
        "matmul_peak_flops_per_s": c.matmul_peak_flops_per_s,
        "fraction_of_peak": c.fraction_of_peak,
        "real_token_flops_per_s": (
            c.train_flops_per_s * real_share if real_share is not None else None
        ),
        "real_token_fraction_of_peak": (
            c.fraction_of_peak * real_share if real_share is not None else None
        ),
        "padding_fraction": 1 - real_share if real_share is not None else None,
        "load_s": p.load_s,
        "train_s": p.train_s,
        "evaluate_s": p.evaluate_s,
    }
    for when, scores in (("", metrics.after), ("_before", metrics.before or {})):
        for split, s in scores.items():
            flat[f"{split}_spearman{when}"] = s.spearman
            flat[f"{split}_pearson{when}"] = s.pearson
    return {k: float(v) for k, v in flat.items() if v is not None and k in METRICS}


# The measured spread of one repetition, used as the interval of a metric measured once (n = 1),
# where the run itself cannot show its spread. Sources (docs/explanation/statistics.md): step
# time / samples/s between fresh processes ~2% (CV) at 1 thread (bench/gate_noise.md) and up to
# 9% at 2 threads (three quiet quick runs); peak RSS ~100 MB between fresh environments,
# anonymous RSS ~1%; STS-B Spearman / Pearson after fine-tuning move by about a point (0.01) with
# the seed (Reimers & Gurevych 2017, Dodge et al. 2020). Metrics not listed (parameter counts,
# steps, zero-shot scores, CUDA counters) are deterministic for a given scenario and are taken as
# exact at n = 1.
_SPEED = frozenset(
    {
        "samples_per_s",
        "real_tokens_per_s",
        "padded_tokens_per_s",
        "step_time_s",
        "train_flops_per_s",
        "fraction_of_peak",
        "train_s",
        "load_s",
        "evaluate_s",
    }
)
_RSS = frozenset(
    {
        "rss_before_train_bytes",
        "peak_rss_bytes",
        "train_peak_rss_bytes",
        "train_rss_increase_bytes",
        # the device's principal counter when it is an RSS (a CPU); on CUDA it is the allocator
        # peak, exact like the other CUDA counters (see process_noise_sd)
        "peak_memory_bytes",
    }
)
_SEEDED_SCORES = frozenset({"dev_spearman", "dev_pearson", "test_spearman", "test_pearson"})
SPEED_CV_ONE_THREAD = 0.02
SPEED_CV_MORE_THREADS = 0.09
RSS_SD_BYTES = 100e6
# Anonymous RSS does not depend on the page cache: 21 A/A process pairs in two machine states
# differed by 0.94% SD (0.66% a process; bench/gate_noise.md), rounded up.
ANON_RSS_CV = 0.01
SCORE_SEED_SD = 0.01


def process_noise_sd(
    metric: str, value: float, threads: int | None, peak_memory_source: str | None = None
) -> float | None:
    """The standard deviation of one repetition of ``metric`` known from earlier measurements,
    or None for a metric that is exact for its scenario (see the table above).

    Args:
        metric: A name of :data:`METRICS`.
        value: The measured value (speed noise is relative to it).
        threads: The scenario's torch threads (None: the torch default, i.e. several).
        peak_memory_source: What ``peak_memory_bytes`` counts. The CUDA allocator's peak is the
            same for the same scenario and seed (the other CUDA counters are exact here too),
            so only an RSS-based principal counter gets the RSS noise.
    """
    if metric in _SPEED:
        return abs(value) * (SPEED_CV_ONE_THREAD if threads == 1 else SPEED_CV_MORE_THREADS)
    if metric == "peak_memory_bytes" and not (peak_memory_source or "").endswith("_rss"):
        return None
    if metric == "train_peak_anon_rss_bytes":
        return abs(value) * ANON_RSS_CV
    if metric in _RSS:
        return RSS_SD_BYTES
    if metric in _SEEDED_SCORES:
        return SCORE_SEED_SD
    return None


def summarize(repetitions: Sequence[ScenarioResult]) -> dict[str, MetricSummary]:
    """Mean, SD and 95% t-interval of every metric across the ok repetitions (two or more)."""
    flats = [(r.scenario.seed, flatten_result(r)) for r in repetitions if r.status is Status.OK]
    if len(flats) < 2:
        return {}
    summary: dict[str, MetricSummary] = {}
    for metric in METRICS:
        if all(metric in flat for _, flat in flats):
            e = estimate([(seed, flat[metric]) for seed, flat in flats])
            summary[metric] = MetricSummary(e.mean, e.sd, e.n, e.low, e.high)
    return summary
