"""The memory-model section of an appendix: validation, the seed's figures, break-even, a chart.

Shown for an ADR whose claims or triggers use ``estimate.*`` facts. The validation points are the
runs under ``<results>/evidence/memory-scaling/`` (``bench/memory_scaling.toml``); the chart is
peak memory against parameters, log-log: a line per method from the estimator (fp32 regime,
LLaMA-proportioned shapes), the measured points (BERT shapes), the budgets and the 7B mark.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib.style
from matplotlib.figure import Figure
from tabulate import tabulate

from adrbench.decisions.breakeven import (
    BUDGETS,
    SUITE_BATCH,
    SUITE_SEQ,
    break_even_rows,
    format_break_even,
    format_seed_rows,
    regime_settings,
    seed_rows,
)
from adrbench.decisions.calibration import Point, measured_points
from adrbench.decisions.estimate import CALIBRATION, estimate, llama_family
from adrbench.reports.charts import CHART_STYLE, SVG_METADATA
from adrbench.results.record import RunRecord
from adrbench.results.store import iter_runs, load_run
from adrbench.units import format_bytes, format_count

__all__ = [
    "COUNTER_LABELS",
    "FIT_SCENARIOS",
    "MEMORY_SCALING_DIR",
    "latest_points",
    "memory_points",
    "memory_runs",
    "render_break_even_chart",
    "render_memory_section",
    "rss_before_training",
]

MEMORY_SCALING_DIR = Path("evidence") / "memory-scaling"
# The points the CPU constants were fitted on (bench/fit_memory_model.py); every other point
# validates them.
FIT_SCENARIOS = ("full_22m", "lora_22m", "full_110m", "lora_110m")
COUNTER_LABELS = {
    "train_peak_anon_rss_bytes": "anon RSS peak",
    "train_peak_rss_bytes": "train peak RSS",
    "peak_rss_bytes": "process peak RSS",
    "cuda_max_allocated_bytes": "CUDA max allocated",
}
_COLOURS = {"full": "#d62728", "lora": "#1f77b4", "qlora": "#2ca02c"}
_QLORA_NOTE = (
    "CPU QLoRA runs with glibc's mmap threshold fixed at 1 MiB, which the engine sets before "
    "quantizing (`src/adrbench/engine/allocator.py`). Quantizing at load time makes and frees an "
    "fp32 copy of each weight, and each forward and backward pass dequantizes each 4-bit weight "
    "into a fresh fp32 buffer (4 to 16 MiB at 335M). With glibc's adaptive threshold (up to "
    "32 MiB after the first large free) those blocks came from a heap that fragmented and kept "
    "growing: in run 20261203T085504Z-memory_scaling-quick-4504, made before the engine set "
    "it, the estimates fell 4.6% to 60.4% short of CPU QLoRA's anonymous peaks (at 335M: "
    "2.80 GiB measured then, 1.09 GiB now; a scratch check saw that peak rise at each of the 4 "
    "steps). The rows above are the newest run of each scenario; the older runs stay in the "
    "evidence directory."
)


def memory_points(results_dir: Path) -> list[Point]:
    """The newest measured point of each memory-scaling scenario, with the committed constants."""
    return latest_points(measured_points(memory_runs(results_dir), root=results_dir.parent))


def latest_points(points: Sequence[Point]) -> list[Point]:
    """One point per scenario: the newest run's (run ids start with their UTC time).

    Older runs stay in the evidence directory; a rerun of a scenario (e.g. with a counter the
    older run did not have) replaces its row rather than adding a second one.
    """
    newest: dict[str, Point] = {}
    for point in points:
        if point.scenario not in newest or point.run_id > newest[point.scenario].run_id:
            newest[point.scenario] = point
    return [p for p in points if newest[p.scenario] is p]


def memory_runs(results_dir: Path) -> list[RunRecord]:
    directory = results_dir / MEMORY_SCALING_DIR
    if not directory.is_dir():
        return []
    return [load_run(path) for path in iter_runs(directory)]


def rss_before_training(runs: Sequence[RunRecord]) -> dict[tuple[str, str], int]:
    """RSS before the first step, by (run id, scenario)."""
    return {
        (run.run_id, r.name): r.metrics.memory.rss_before_train_bytes
        for run in runs
        for r in run.scenarios
        if r.metrics is not None
    }


def _role(point: Point) -> str:
    return "fit" if point.scenario in FIT_SCENARIOS else "validation"


def _points_table(points: Sequence[Point], before: dict[tuple[str, str], int]) -> str:
    rows = [
        [
            p.scenario,
            format_count(p.estimate.parameters),
            f"{p.estimate.settings.batch_size} x {p.estimate.settings.seq_len}",
            format_bytes(before[p.run_id, p.scenario]) if (p.run_id, p.scenario) in before else "—",
            COUNTER_LABELS.get(p.counter, p.counter),
            format_bytes(p.measured_bytes),
            format_bytes(p.estimate.peak_bytes),
            format_bytes(p.counted_bytes),
            f"{p.error:+.1%}",
            _role(p),
        ]
        for p in points
    ]
    headers = [
        "scenario",
        "parameters",
        "sequences x tokens",
        "RSS before training",
        "counter",
        "measured",
        "estimate (whole peak)",
        "estimate as counted",
        "error",
        "role",
    ]
    return tabulate(rows, headers=headers, tablefmt="github")


def render_memory_section(
    points: Sequence[Point], before: dict[tuple[str, str], int] | None = None
) -> str:
    """Markdown for the appendix's memory-model section (the template gives its heading)."""
    parts: list[str] = []
    if points:
        met = [p for p in points if abs(p.error) <= 0.10]
        validation = [p for p in points if p.scenario not in FIT_SCENARIOS]
        worst = max((abs(p.error) for p in points), default=0.0)
        worst_validation = max((abs(p.error) for p in validation), default=0.0)
        cpu = CALIBRATION["cpu"]
        counters = sorted({COUNTER_LABELS.get(p.counter, p.counter) for p in points})
        parts.append(
            f"Estimated vs measured peak training memory, {len(points)} points of "
            f"`bench/memory_scaling.toml` (runs {', '.join(sorted({p.run_id for p in points}))}; "
            "the newest run's point of each scenario; CPU, fp32, AdamW, LoRA r=8). "
            f"Counter: {', '.join(counters)}. The anonymous-RSS peak (sampled after the forward "
            "pass, the backward pass and the optimizer step) has no file pages in it, so it "
            "cannot see the frozen base weights, which stay pages of the memory-mapped "
            "checkpoint (every base weight under LoRA, the unquantized ones under QLoRA), the "
            "libraries' code pages or the optimizer step's temporaries: each error is taken "
            "against 'estimate as counted', the estimate without those parts; 'estimate (whole "
            "peak)' is what a memory budget has to hold. "
            f"Four CPU constants were fitted (`bench/fit_memory_model.py`) on the "
            f"{len(points) - len(validation)} 'fit' points: fixed overhead "
            f"{format_bytes(cpu.fixed_bytes)} (of which {format_bytes(cpu.file_bytes)} "
            f"file-backed), activation factor {cpu.activation_factor:.2f}, allocator factor "
            f"{cpu.allocator_factor:.3f}; the other points set nothing. Largest error: "
            f"{worst:.1%} over all points, {worst_validation:.1%} over the validation points; "
            f"{len(met)} of {len(points)} points within 10%. One "
            "process per point (n = 1 each): one training window's peak, not an average.\n\n"
            + _points_table(points, before or {})
            + "\n\n"
            + _QLORA_NOTE
        )
    else:
        parts.append("No memory-scaling run yet: run `bench/memory_scaling.toml` (see its header).")
    batch, seq = SUITE_BATCH, SUITE_SEQ
    parts.append(
        "The seed's hand arithmetic for a 7B model against the estimator's LLaMA-7B shape "
        f"(6.74B parameters): LoRA r=8 on q/k/v/o with AdamW, {batch} sequences of {seq} tokens "
        "(the suite's), bf16 weights and autocast, the CPU calibration. Activations at longer "
        "sequences are extrapolated, not validated.\n\n"
        + format_seed_rows(seed_rows(batch, seq), tablefmt="github")
    )
    parts.append(
        f"Break-even at the suite's {SUITE_BATCH} sequences of {SUITE_SEQ} tokens (AdamW, LoRA "
        "r=8 on q/k/v/o, LLaMA-proportioned shapes, the CPU calibration): the largest model "
        "each method fits, and the size from which only QLoRA fits. fp32 is how this engine "
        "trains (measured); 16-bit follows from the dtypes (not measured here).\n\n"
        + format_break_even(break_even_rows(), tablefmt="github")
    )
    return "\n\n".join(parts)


def render_break_even_chart(points: Sequence[Point]) -> bytes:
    """Peak memory against parameters, log-log, as SVG bytes (deterministic)."""
    family = llama_family()
    with matplotlib.style.context(["default", CHART_STYLE]):
        figure = Figure(figsize=(7.0, 4.6))
        axes = figure.add_subplot()
        for method in ("full", "lora", "qlora"):
            settings = regime_settings(method, "fp32")
            xs = [a.parameters for a in family]
            ys = [estimate(a, settings).peak_bytes / 1e9 for a in family]
            axes.plot(
                xs, ys, color=_COLOURS[method], label=f"{method} (estimate, whole peak, LLaMA)"
            )
            measured = [p for p in points if p.method == method]
            if not measured:
                continue
            # Like with like: each measured point beside the estimate of the same counter for
            # the same architecture (the anonymous-RSS peak does not see mapped weights, file
            # pages or the optimizer's temporaries, so neither does its estimate), joined by a
            # line whose length is the error.
            xs_measured = [p.estimate.parameters for p in measured]
            for p in measured:
                axes.plot(
                    [p.estimate.parameters] * 2,
                    [p.measured_bytes / 1e9, p.counted_bytes / 1e9],
                    color=_COLOURS[method],
                    linewidth=0.8,
                    zorder=2,
                )
            counters = ", ".join(
                sorted({COUNTER_LABELS.get(p.counter, p.counter) for p in measured})
            )
            for fitted, marker, role in ((True, "s", "fitted on"), (False, "o", "held out")):
                group = [p for p in measured if (p.scenario in FIT_SCENARIOS) is fitted]
                if group:
                    axes.scatter(
                        [p.estimate.parameters for p in group],
                        [p.measured_bytes / 1e9 for p in group],
                        color=_COLOURS[method],
                        edgecolors="black",
                        marker=marker,
                        zorder=3,
                        label=f"{method} measured, {role} ({counters})",
                    )
            axes.scatter(
                xs_measured,
                [p.counted_bytes / 1e9 for p in measured],
                color=_COLOURS[method],
                marker="x",
                zorder=3,
                label=f"{method} estimate of that counter",
            )
        for label, budget in BUDGETS:
            axes.axhline(budget / 1e9, color="grey", linestyle=":", linewidth=0.8)
            axes.annotate(label, (1.2e7, budget / 1e9), fontsize=7, color="grey", va="bottom")
        axes.axvline(7e9, color="black", linestyle="--", linewidth=0.8)
        axes.annotate("7B", (7.3e9, 0.35), fontsize=8)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlim(1e7, 1e11)
        axes.set_ylim(0.3, 2000)
        axes.set_xlabel("parameters")
        axes.set_ylabel("peak training memory, GB (lines: whole peak; points: their counter)")
        axes.set_title(
            f"Peak training memory vs model size ({SUITE_BATCH} x {SUITE_SEQ} tokens, AdamW)"
        )
        axes.grid(True, which="major", linewidth=0.3)
        axes.legend(fontsize=7, loc="upper left")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata=SVG_METADATA)
    return buffer.getvalue()
