"""The serving section of an appendix: memory and latency against the number of variants served.

A serving scenario (``serve`` set, :class:`~adrbench.results.record.Serving`) is not a training
run, so it has no per-scenario training table: all of a run's serving scenarios go in one table
per environment (one row each, the N variants and how they are held), and one chart shows
resident memory against N for each approach and the swap latency, each point the mean over the
scenario's processes with its 95% Student-t interval (none at n = 1: the run cannot show it).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tabulate import tabulate

from adrbench.results.metrics import flatten_result
from adrbench.results.record import RunRecord, ScenarioResult, Status
from adrbench.stats import Estimate, estimate
from adrbench.units import format_bytes

__all__ = [
    "approach",
    "is_serving",
    "render_serving_chart",
    "render_serving_section",
    "serving_estimate",
]

_MEMORY_LABELS = {
    "anon_rss": "anonymous RSS",
    "rss": "RSS",
    "cuda_allocated": "CUDA allocated",
    "mps_allocated": "MPS allocated",
}


def is_serving(result: ScenarioResult) -> bool:
    """Whether ``result`` is of a serving scenario (whatever its status)."""
    return result.scenario.serve is not None


def approach(result: ScenarioResult) -> str:
    """How the variants are held: ``adapters on an fp32 base`` and the like."""
    serve = result.scenario.serve
    assert serve is not None  # only serving results come here
    if serve.merged:
        return "merged copies"
    return f"adapters on an {'NF4' if result.scenario.method == 'qlora' else 'fp32'} base"


def serving_estimate(result: ScenarioResult, metric: str) -> Estimate | None:
    """The mean of ``metric`` over the ok processes of ``result``, with its 95% t-interval."""
    values = [
        (rep.scenario.seed, flat[metric])
        for rep in result.samples()
        if rep.status is Status.OK and metric in (flat := flatten_result(rep))
    ]
    return estimate(values) if values else None


def _seconds(mean: float, half: float | None) -> str:
    """Seconds in the unit that suits the mean (s, ms, µs), the half-width in the same unit."""
    scale, unit = (1.0, "s") if mean >= 1.0 else (1e3, "ms") if mean >= 1e-3 else (1e6, "µs")
    digits = 1 if unit == "µs" else 2
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {half * scale:.{digits}f}" if half is not None else "") + f" {unit}"


def _bytes(mean: float, half: float | None) -> str:
    return format_bytes(mean) + (f" ± {format_bytes(half)}" if half is not None else "")


def _rate(mean: float, half: float | None) -> str:
    return f"{mean:.0f}" + (f" ± {half:.0f}" if half is not None else "")


def _cell(result: ScenarioResult, metric: str, fmt: Callable[[float, float | None], str]) -> str:
    """The mean ± the 95% half-width over the processes; at n = 1 the value and ``(n=1)``."""
    e = serving_estimate(result, metric)
    if e is None:
        return "—"
    if e.n == 1:
        return f"{fmt(e.mean, None)} (n=1)"
    return fmt(e.mean, e.half_width)


def _status(result: ScenarioResult) -> str:
    if result.status is Status.OK:
        return f"ok (n={len([r for r in result.samples() if r.status is Status.OK])})"
    if result.skip is not None:
        return f"{result.status.value}: `{result.skip.reason}`"
    assert result.failure is not None
    return f"**failed** ({result.failure.kind.value}): {result.failure.message}"


def _table(run: RunRecord, names: Sequence[str]) -> str:
    rows = []
    results = [r for name in names for r in run.scenarios if r.name == name]
    for result in results:
        serve = result.scenario.serve
        assert serve is not None
        rows.append(
            [
                f"`{result.name}`",
                str(serve.adapters),
                approach(result),
                _status(result),
                _cell(result, "resident_memory_bytes", _bytes),
                _cell(result, "added_memory_bytes", _bytes),
                _cell(result, "swap_p50_s", _seconds)
                + " / "
                + _cell(result, "swap_p99_s", _seconds),
                _cell(result, "encode_p50_s", _seconds)
                + " / "
                + _cell(result, "encode_p99_s", _seconds),
                _cell(result, "encode_sentences_per_s", _rate),
                _cell(result, "encode_swap_sentences_per_s", _rate),
            ]
        )
    headers = [
        "scenario",
        "N",
        "held as",
        "status",
        "resident memory",
        "added to the base",
        "swap p50 / p99",
        "request p50 / p99",
        "sentences/s",
        "sentences/s, swap each request",
    ]
    return str(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


def _sources(run: RunRecord, names: Sequence[str]) -> str:
    found = sorted(
        {
            _MEMORY_LABELS.get(rep.serving.memory_source, rep.serving.memory_source)
            for r in run.scenarios
            if r.name in names
            for rep in r.samples()
            if rep.serving is not None
        }
    )
    return ", ".join(found) or "no scenario finished"


def _batch(run: RunRecord, names: Sequence[str]) -> str:
    batches = sorted(
        {
            r.scenario.serve.request_batch
            for r in run.scenarios
            if r.name in names and r.scenario.serve
        }
    )
    return ", ".join(map(str, batches))


def render_serving_section(runs: Sequence[tuple[str, RunRecord]], names: Sequence[str]) -> str:
    """One table per environment of every serving scenario in ``names``.

    Args:
        runs: (environment label, run) of each environment shown.
        names: The serving scenarios, in the ADR's order.
    """
    parts = []
    for label, run in runs:
        if not any(r.name in names for r in run.scenarios):
            continue
        parts.append(
            f"**{label}** (run `{run.run_id}`; memory: {_sources(run, names)}; requests of "
            f"{_batch(run, names)} STS-B test sentences)\n\n{_table(run, names)}"
        )
    legend = (
        "Each number is the mean over the scenario's processes ± the half-width of its 95% "
        "Student-t interval (n processes, one sample each; p50 and p99 are taken within each "
        "process first). *Resident memory* is read with every variant loaded and used once; "
        "*added to the base* subtracts the reading with the base model alone. A swap makes "
        "another variant the active one: peft's `set_adapter` for adapters, picking another copy "
        "for merged copies. *Swap each request* switches variant before every request, the swap "
        "timed with it."
    )
    return "\n\n".join([*parts, legend]) if parts else ""


@dataclass(frozen=True, slots=True)
class _Series:
    label: str
    n: list[float]
    mean: list[float]
    half_width: list[float]


def _series(run: RunRecord, names: Sequence[str], metric: str, scale: float) -> list[_Series]:
    by_approach: dict[str, list[tuple[float, Estimate]]] = {}
    for result in (r for r in run.scenarios if r.name in names and is_serving(r)):
        e = serving_estimate(result, metric)
        if e is None:
            continue
        serve = result.scenario.serve
        assert serve is not None
        by_approach.setdefault(approach(result), []).append((float(serve.adapters), e))
    series = []
    for name, points in sorted(by_approach.items()):
        points.sort(key=lambda p: p[0])
        series.append(
            _Series(
                name,
                [p[0] for p in points],
                [p[1].mean * scale for p in points],
                [p[1].half_width * scale for p in points],
            )
        )
    return series


# One colour per approach, one line style per statistic, one marker per environment.
_COLOURS = {
    "adapters on an fp32 base": "#1f77b4",
    "adapters on an NF4 base": "#2ca02c",
    "merged copies": "#ff7f0e",
}


def _panel(
    axes: Any,
    runs: Sequence[tuple[str, RunRecord]],
    names: Sequence[str],
    plots: Sequence[tuple[str, str, float, str]],
) -> bool:
    drawn = False
    ticks: set[float] = set()
    for index, (label, run) in enumerate(runs):
        for metric, what, scale, style in plots:
            for series in _series(run, names, metric, scale):
                axes.errorbar(
                    series.n,
                    series.mean,
                    yerr=series.half_width,
                    marker="os^D"[index % 4],
                    linestyle=style,
                    color=_COLOURS.get(series.label),
                    capsize=3,
                    label=f"{series.label}{what} · {label}",
                )
                ticks.update(series.n)
                drawn = True
    axes.set_xscale("log", base=2)
    if ticks:
        axes.set_xticks(sorted(ticks), [f"{t:g}" for t in sorted(ticks)])
    return drawn


def render_serving_chart(
    runs: Sequence[tuple[str, RunRecord]],
    names: Sequence[str],
    *,
    fmt: Literal["svg", "png"] = "svg",
) -> bytes:
    """Resident memory against N (left) and the swap latency against N (right), as SVG (or PNG,
    for looking at it), the same bytes for the same inputs.

    Args:
        runs: (environment label, run) of each environment shown.
        names: The serving scenarios.
        fmt: ``svg`` or ``png``.
    """
    import matplotlib.style  # only when a chart is drawn: check and lint never import it
    from matplotlib.figure import Figure

    from adrbench.reports.charts import CHART_STYLE, SVG_METADATA

    with matplotlib.style.context(["default", CHART_STYLE]):
        figure = Figure(figsize=(9.0, 4.6), layout="constrained")
        memory, swap = figure.subplots(1, 2)
        drawn = _panel(memory, runs, names, [("resident_memory_bytes", "", 1 / 2**20, "-")])
        memory.set_xlabel("variants served (N)")
        memory.set_ylabel("resident memory, MiB")
        memory.set_title("Resident memory against N (whiskers: 95% CI)")
        swap_plots = [("swap_p50_s", " p50", 1e6, "-"), ("swap_p99_s", " p99", 1e6, "--")]
        if _panel(swap, runs, names, swap_plots):
            swap.set_yscale("log")
        if not drawn:
            for axes in (memory, swap):
                axes.text(0.5, 0.5, "no serving scenario finished", ha="center", va="center")
        swap.set_xlabel("variants served (N)")
        swap.set_ylabel("swap latency, µs (log)")
        swap.set_title("Swap latency against N (whiskers: 95% CI)")
        for axes in (memory, swap):
            axes.grid(color="#dddddd", linewidth=0.6)
            axes.set_axisbelow(True)
            if drawn:
                axes.legend(fontsize=6, frameon=False)
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, metadata=SVG_METADATA if fmt == "svg" else None)
    return buffer.getvalue()
