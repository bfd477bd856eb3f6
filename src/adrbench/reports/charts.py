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

from adrbench.results.metrics import process_noise_sd
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


@dataclass(frozen=True, slots=True)
class _Bar:
    """One scenario's bar for one environment: the mean, the half-width of the interval the
    verdicts use, and n (0: not measured)."""

    value: float
    half_width: float
    n: int


def _bar(result: ScenarioResult | None, value: Literal["throughput", "memory"]) -> _Bar:
    metrics = result.metrics if result is not None else None
    if result is None or metrics is None:
        return _Bar(0.0, 0.0, 0)
    # One value per ok repetition (process); the whisker is the 95% interval of their mean, as
    # the verdicts judge it: at n = 1 the metric's measured process noise (its prior).
    reps = [r for r in result.samples() if r.status is Status.OK and r.metrics is not None]
    if value == "throughput":
        metric = "samples_per_s"
        values = [r.metrics.throughput.samples_per_s for r in reps if r.metrics]
        scale = 1.0
    else:
        metric = "peak_memory_bytes"
        values = [memory_reading(r.metrics.memory).bytes for r in reps if r.metrics]
        scale = 1.0 / 2**20
    prior = None
    if len(values) == 1:
        prior = process_noise_sd(
            metric, values[0], result.scenario.threads, metrics.memory.peak_memory_source
        )
    e = estimate(list(enumerate(values)), prior_sd=prior)
    return _Bar(e.mean * scale, e.half_width * scale, len(values))


def _bars(
    figure: Figure,
    runs: Sequence[RunRecord],
    scenarios: Sequence[str],
    *,
    value: Literal["throughput", "memory"],
) -> None:
    """Horizontal bars, one row per scenario (sorted by the first environment's value, largest
    on top), one bar per environment in each row: labels sit on their own lines at any number of
    scenarios. A bar measured once is hatched and carries the prior interval its verdicts use."""
    axes = figure.add_subplot()
    bars = {id(run): {name: _bar(_find(run, name), value) for name in scenarios} for run in runs}
    first = bars[id(runs[0])] if runs else {}
    order = sorted(scenarios, key=lambda name: (-first[name].value if first else 0.0, name))
    count = max(1, len(runs))
    height = 0.8 / count
    rows = range(len(order) - 1, -1, -1)  # the first of ``order`` at the top
    right = 0.0
    once = False
    for index, run in enumerate(runs):
        mine = [bars[id(run)][name] for name in order]
        offsets = [row + 0.4 - height * (index + 0.5) for row in rows]
        sources = sorted(
            {
                memory_reading(r.metrics.memory).source
                for name in order
                if (found := _find(run, name)) is not None
                for r in found.samples()
                if r.metrics is not None and r.status is Status.OK
            }
        )
        label = _label(run) + (f" ({', '.join(sources)})" if value == "memory" and sources else "")
        drawn = axes.barh(
            offsets,
            [b.value for b in mine],
            height,
            xerr=[b.half_width for b in mine] if any(b.half_width for b in mine) else None,
            capsize=3,
            label=label,
        )
        for patch, bar in zip(drawn.patches, mine, strict=True):
            if bar.n == 1:
                patch.set_hatch("///")
                once = True
        right = max([right, *(b.value + b.half_width for b in mine)])
        for offset, name, bar in zip(offsets, order, mine, strict=True):
            if bar.n == 0:
                text = _not_measured(_find(run, name)).replace("\n", " ")
                axes.text(0.0, offset, f" {text}", va="center", fontsize=7, color="#555555")
    axes.set_yticks(list(rows), list(order))
    axes.set_ylim(-0.6, len(order) - 0.4)
    axes.set_xlim(0.0, right * 1.15 if right > 0 else 1.0)
    whisker = "whisker: 95% CI of the mean" + ("; hatched: n = 1, prior interval" if once else "")
    if value == "throughput":
        axes.set_xlabel(f"samples/s ({whisker})")
        axes.set_title("Training throughput per scenario")
    else:
        axes.set_xlabel(f"peak memory, MiB ({whisker})")
        axes.set_title("Peak memory per scenario (counter per environment in the legend)")
    axes.grid(axis="x", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7, frameon=False)


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
        rows = len(scenarios) * max(1, len(runs)) if kind != "pareto" else 0
        # Bar charts grow with their rows (about 0.22 in a bar), so labels never crowd.
        figure = Figure(figsize=(7.0, max(4.6, 1.8 + 0.22 * rows)), layout="constrained")
        if kind == "pareto":
            _pareto(figure, runs, scenarios)
        else:
            _bars(figure, runs, scenarios, value=kind)
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, metadata=_METADATA if fmt == "svg" else None)
    return buffer.getvalue()
