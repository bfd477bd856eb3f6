"""SVG charts for the appendices: throughput, peak memory, and memory against STS-B test Spearman.

Deterministic by construction, so a rerun on the same results gives the same bytes and
``adrbench report --check`` does not flag charts as stale: no pyplot (no global figure state),
rcParams set in a local context (``svg.hashsalt`` fixed so element ids do not depend on a random
salt, text drawn as paths in DejaVu Sans, which ships with matplotlib), and the SVG ``Date``
metadata dropped.

One figure per chart; environments are side by side (grouped bars, or one marker style each).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib.style
from matplotlib.figure import Figure

from adrbench.results.record import (
    MEMORY_SOURCE_LABELS,
    Memory,
    RunRecord,
    ScenarioResult,
    Status,
)
from adrbench.stats import estimate

__all__ = [
    "CHART_KINDS",
    "CHART_STYLE",
    "SVG_METADATA",
    "ChartKind",
    "MemoryReading",
    "memory_reading",
    "render_chart",
]

ChartKind = Literal["throughput", "memory", "pareto"]
CHART_KINDS: tuple[ChartKind, ...] = ("throughput", "memory", "pareto")

# Applied on top of matplotlib's defaults, so a user's matplotlibrc cannot change the bytes.
_RC: dict[str, Any] = {
    "svg.hashsalt": "adrbench",  # fixed salt: clip-path and glyph ids are the same every render
    "svg.fonttype": "path",  # glyphs as paths: the file does not depend on the viewer's fonts
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "figure.dpi": 100.0,
    "savefig.dpi": 100.0,
    "path.simplify": True,
}
_METADATA = {"Date": None, "Creator": "adrbench"}  # no timestamp, no library version
CHART_STYLE, SVG_METADATA = _RC, _METADATA  # for the other chart modules (reports.memory_model)
_MARKERS = ("o", "s", "^", "D", "v", "P")


@dataclass(frozen=True, slots=True)
class MemoryReading:
    """The peak-memory counter a chart uses for one result, named for its source.

    Args:
        source: e.g. ``"CUDA max allocated"``.
        bytes: The counter's value.
    """

    source: str
    bytes: int


def memory_reading(memory: Memory) -> MemoryReading:
    """The device's principal peak memory counter (``peak_memory_bytes``) and its label.

    CUDA max allocated, MPS allocation, else the RSS high-water mark over training only, else
    over the whole process (see :func:`adrbench.results.record.principal_memory`).

    Args:
        memory: The result's memory counters.
    """
    label = MEMORY_SOURCE_LABELS.get(memory.peak_memory_source, memory.peak_memory_source)
    return MemoryReading(label, memory.peak_memory_bytes)


def _find(run: RunRecord, name: str) -> ScenarioResult | None:
    return next((r for r in run.scenarios if r.name == name), None)


def _not_measured(result: ScenarioResult | None) -> str:
    if result is None:
        return "not run"
    if result.status is Status.SKIPPED and result.skip is not None:
        return f"skipped:\n{result.skip.reason}"
    if result.status is Status.FAILED and result.failure is not None:
        return f"failed:\n{result.failure.kind.value}"
    return "no data"


def _label(run: RunRecord) -> str:
    return f"{run.environment.device_name} · {run.environment.fingerprint}"


def _bars(
    figure: Figure,
    runs: Sequence[RunRecord],
    scenarios: Sequence[str],
    *,
    value: Literal["throughput", "memory"],
) -> None:
    axes = figure.add_subplot()
    count = max(1, len(runs))
    width = 0.8 / count
    top = 0.0
    for index, run in enumerate(runs):
        offsets = [i - 0.4 + width * (index + 0.5) for i in range(len(scenarios))]
        heights: list[float] = []
        errors: list[float] = []
        sources: set[str] = set()
        for name in scenarios:
            result = _find(run, name)
            metrics = result.metrics if result is not None else None
            if result is None or metrics is None:
                heights.append(0.0)
                errors.append(0.0)
                continue
            # One value per ok repetition (process); the whisker is the 95% t-interval of their
            # mean, and there is none with one repetition (its spread is not measured).
            reps = [r.metrics for r in result.samples() if r.status is Status.OK and r.metrics]
            if value == "throughput":
                values = [m.throughput.samples_per_s for m in reps]
            else:
                readings = [memory_reading(m.memory) for m in reps]
                values = [reading.bytes / 2**20 for reading in readings]
                sources.update(reading.source for reading in readings)
            e = estimate(list(enumerate(values)))
            heights.append(e.mean)
            errors.append(e.half_width)
        label = _label(run)
        if sources:
            label += f" ({', '.join(sorted(sources))})"
        axes.bar(
            offsets,
            heights,
            width,
            yerr=errors if any(errors) else None,
            capsize=3,
            label=label,
        )
        top = max([top, *(h + e for h, e in zip(heights, errors, strict=True))])
        for offset, name, height in zip(offsets, scenarios, heights, strict=True):
            if height == 0.0:
                axes.text(
                    offset,
                    0.0,
                    _not_measured(_find(run, name)),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90,
                    color="#555555",
                )
    axes.set_xticks(range(len(scenarios)), list(scenarios))
    axes.set_xlim(-0.6, max(len(scenarios), 3) - 0.4)  # one or two scenarios: no slab-wide bars
    axes.set_ylim(0.0, top * 1.15 if top > 0 else 1.0)
    if value == "throughput":
        axes.set_ylabel("samples/s (whisker: 95% CI of the mean over repetitions)")
        axes.set_title("Training throughput per method")
    else:
        axes.set_ylabel("peak memory (MiB; whisker: 95% CI over repetitions)")
        axes.set_title("Peak memory per method")
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=7, frameon=False)


def _pareto(figure: Figure, runs: Sequence[RunRecord], scenarios: Sequence[str]) -> None:
    axes = figure.add_subplot()
    plotted = False
    for index, run in enumerate(runs):
        points: list[tuple[float, float, str]] = []
        sources: set[str] = set()
        for name in scenarios:
            result = _find(run, name)
            if result is None or result.metrics is None:
                continue
            # The mean over the ok repetitions that have a test score (one point per scenario).
            reps = [
                r.metrics
                for r in result.samples()
                if r.status is Status.OK and r.metrics is not None and "test" in r.metrics.after
            ]
            if not reps:
                continue
            readings = [memory_reading(m.memory) for m in reps]
            sources.update(reading.source for reading in readings)
            memory = sum(reading.bytes for reading in readings) / len(readings) / 2**20
            score = sum(m.after["test"].spearman for m in reps) / len(reps)
            points.append((memory, score, name))
        if not points:
            continue
        plotted = True
        label = f"{_label(run)} ({', '.join(sorted(sources))})"
        line = axes.scatter(
            [p[0] for p in points],
            [p[1] for p in points],
            marker=_MARKERS[index % len(_MARKERS)],
            label=label,
            zorder=3,
        )
        for x, y, name in points:
            axes.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
        # The frontier: points no other point beats on both lower memory and higher Spearman.
        frontier = [
            p
            for p in points
            if not any(q[0] <= p[0] and q[1] >= p[1] and q[:2] != p[:2] for q in points)
        ]
        frontier.sort()
        axes.plot(
            [p[0] for p in frontier],
            [p[1] for p in frontier],
            linestyle="--",
            linewidth=0.8,
            color=line.get_facecolor()[0],
        )
    if not plotted:
        axes.text(
            0.5, 0.5, "no completed scenario", ha="center", va="center", transform=axes.transAxes
        )
    axes.set_xlabel("peak memory (MiB) — lower is better")
    axes.set_ylabel("STS-B test Spearman — higher is better")
    axes.set_title("Memory against accuracy (dashed: Pareto frontier)")
    axes.grid(color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)
    if plotted:
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7, frameon=False)


def render_chart(
    kind: ChartKind,
    runs: Sequence[RunRecord],
    scenarios: Sequence[str],
    *,
    fmt: Literal["svg", "png"] = "svg",
) -> bytes:
    """One chart as SVG (or PNG, for looking at it), the same bytes for the same inputs.

    Args:
        kind: ``throughput`` (mean samples/s per scenario over its repetitions, whiskers the 95%
            t-interval of that mean; none at n = 1), ``memory`` (peak memory per scenario, from
            the counter :func:`memory_reading` picks, likewise) or ``pareto`` (peak
            memory against STS-B test Spearman).
        runs: One run per environment, shown side by side.
        scenarios: The scenario names, in order; skipped and failed ones are labelled on the
            bar charts and left out of the Pareto view.
        fmt: ``svg`` or ``png``.
    """
    with matplotlib.style.context(["default", _RC]):
        figure = Figure(figsize=(7.0, 4.6), layout="constrained")
        if kind == "pareto":
            _pareto(figure, runs, scenarios)
        else:
            _bars(figure, runs, scenarios, value=kind)
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, metadata=_METADATA if fmt == "svg" else None)
    return buffer.getvalue()
