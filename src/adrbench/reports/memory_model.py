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
from adrbench.decisions.estimate import FIXED_BYTES, estimate, llama_family
from adrbench.reports.charts import CHART_STYLE, SVG_METADATA
from adrbench.results.store import iter_runs, load_run
from adrbench.units import format_bytes, format_count

__all__ = [
    "FIT_SCENARIOS",
    "MEMORY_SCALING_DIR",
    "memory_points",
    "render_break_even_chart",
    "render_memory_section",
]

MEMORY_SCALING_DIR = Path("evidence") / "memory-scaling"
# The points the CPU fixed overhead was fitted on; every other point validates it.
FIT_SCENARIOS = ("full_22m", "lora_22m", "qlora_22m", "full_110m", "lora_110m", "qlora_110m")
_COLOURS = {"full": "#d62728", "lora": "#1f77b4", "qlora": "#2ca02c"}


def memory_points(results_dir: Path) -> list[Point]:
    """Every measured point of the memory-scaling runs, with the committed constants."""
    directory = results_dir / MEMORY_SCALING_DIR
    if not directory.is_dir():
        return []
    runs = [load_run(path) for path in iter_runs(directory)]
    return measured_points(runs)


def _points_table(points: Sequence[Point]) -> str:
    rows = [
        [
            p.scenario,
            p.method,
            format_count(p.estimate.parameters),
            f"{p.estimate.settings.batch_size} x {p.estimate.settings.seq_len}",
            format_bytes(p.measured_bytes),
            format_bytes(p.estimate.peak_bytes),
            f"{p.error:+.1%}",
            "fit" if p.scenario in FIT_SCENARIOS else "validation",
        ]
        for p in points
    ]
    headers = [
        "scenario",
        "method",
        "parameters",
        "sequences x tokens",
        "measured (train peak RSS)",
        "estimate",
        "error",
        "role",
    ]
    return tabulate(rows, headers=headers, tablefmt="github")


def render_memory_section(points: Sequence[Point]) -> str:
    """Markdown for the appendix (no heading of its own level 2; the template gives it)."""
    parts: list[str] = []
    if points:
        validation = [p for p in points if p.scenario not in FIT_SCENARIOS]
        worst = max((abs(p.error) for p in points), default=0.0)
        worst_validation = max((abs(p.error) for p in validation), default=0.0)
        parts.append(
            f"Estimated vs measured peak training memory, {len(points)} points of "
            f"`bench/memory_scaling.toml` (run {points[0].run_id}). The CPU fixed overhead "
            f"({format_bytes(FIXED_BYTES['cpu'])}) was fitted on the "
            f"{len(points) - len(validation)} 'fit' points; the {len(validation)} 'validation' "
            "points were not used to set anything."
            f" Largest error: {worst:.1%} over all points, {worst_validation:.1%} over "
            "the validation points. One process per point (n = 1 each): the RSS high-water mark "
            "of one training window, not an average.\n\n" + _points_table(points)
        )
    else:
        parts.append("No memory-scaling run yet: run `bench/memory_scaling.toml` (see its header).")
    parts.append(
        "The seed's hand arithmetic for a 7B model against the estimator's LLaMA-7B shape "
        "(6.74B parameters), LoRA r=8 on q/k/v/o with AdamW, 1 sequence of 512 tokens, bf16 "
        "weights and autocast:\n\n" + format_seed_rows(seed_rows(), tablefmt="github")
    )
    parts.append(
        f"Break-even at the suite's {SUITE_BATCH} sequences of {SUITE_SEQ} tokens (AdamW, LoRA "
        "r=8 on q/k/v/o, LLaMA-proportioned shapes, the CPU fixed overhead): the largest model "
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
            axes.plot(xs, ys, color=_COLOURS[method], label=f"{method} (estimate, fp32)")
            measured = [p for p in points if p.method == method]
            axes.scatter(
                [p.estimate.parameters for p in measured],
                [p.measured_bytes / 1e9 for p in measured],
                color=_COLOURS[method],
                edgecolors="black",
                zorder=3,
                label=f"{method} (measured, CPU)",
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
        axes.set_ylabel("peak training memory (GB)")
        axes.set_title(
            f"Peak training memory vs model size ({SUITE_BATCH} x {SUITE_SEQ} tokens, AdamW)"
        )
        axes.grid(True, which="major", linewidth=0.3)
        axes.legend(fontsize=7, loc="upper left")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata=SVG_METADATA)
    return buffer.getvalue()
