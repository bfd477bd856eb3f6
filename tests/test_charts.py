"""SVG charts: valid XML, the same bytes on every render (in this process and a fresh one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from adrbench.reports.charts import (
    CHART_KINDS,
    ChartKind,
    MemoryReading,
    memory_reading,
    render_chart,
)
from adrbench.results.record import Memory, RunRecord
from factories import make_environment, make_failed, make_ok, make_run, make_skipped

SCENARIOS = ("full", "lora", "qlora", "broken")


def two_runs() -> list[RunRecord]:
    cpu = make_run(
        [
            make_ok("full", noise_cv=0.05, peak_rss_bytes=1_900_000_000, test_spearman=0.86),
            make_ok("lora", method="lora", step_time_s=0.5, noise_cv=0.05, test_spearman=0.84),
            make_skipped("qlora"),
            make_failed("broken"),
        ]
    )
    cuda = make_run(
        [make_ok("full", step_time_s=0.1, noise_cv=0.1), make_ok("lora", step_time_s=0.08)],
        run_id="20261128T130000Z-finetune_sts-quick-0002",
        environment=make_environment("cuda-box", device_kind="cuda", device_name="H100"),
    )
    return [cpu, cuda]


@pytest.mark.parametrize("kind", CHART_KINDS)
def test_chart_is_valid_svg_and_identical_across_two_renders(kind: ChartKind) -> None:
    # GIVEN two environments with ok, skipped and failed scenarios
    runs = two_runs()
    # WHEN the chart is rendered twice
    first = render_chart(kind, runs, SCENARIOS)
    second = render_chart(kind, runs, SCENARIOS)
    # THEN it parses as SVG, carries no date, and the bytes are equal
    root = ET.fromstring(first)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert b"<dc:date>" not in first
    assert first == second


def test_chart_bytes_do_not_depend_on_the_process(tmp_path: Path) -> None:
    # GIVEN a chart rendered here
    here = render_chart("pareto", two_runs(), SCENARIOS)
    # WHEN the same chart is rendered in a fresh interpreter (new hash seed, fresh matplotlib)
    script = (
        "import sys; sys.path.insert(0, 'tests'); from test_charts import two_runs, SCENARIOS; "
        "from adrbench.reports.charts import render_chart; "
        "sys.stdout.buffer.write(render_chart('pareto', two_runs(), SCENARIOS))"
    )
    there = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        check=True,
        cwd=Path(__file__).parent.parent,
        env={
            "PYTHONHASHSEED": "12345",
            "MPLCONFIGDIR": str(tmp_path),
            "MPLBACKEND": "Agg",
            # the same adrbench as this test imports (a checkout on PYTHONPATH, if any)
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        },
    ).stdout
    # THEN the bytes are the same (no random ids, no timestamps)
    assert there == here


def test_bar_chart_labels_skipped_and_failed_scenarios_instead_of_dropping_them() -> None:
    # GIVEN a CPU run with a skipped and a failed scenario, and a CUDA run without them
    # WHEN the throughput chart is rendered (matplotlib keeps each text as an SVG comment)
    svg = render_chart("throughput", two_runs(), SCENARIOS).decode("utf-8")
    comments = re.findall(r"<!-- (.*?) -->", svg)
    # THEN the gaps say why, and each environment is in the legend
    assert comments.count(" skipped: cuda_unavailable") == 1
    assert comments.count(" failed: exception") == 1
    assert comments.count(" not run") == 2
    assert "cpu · cpu-2core-24g" in comments
    assert "H100 · cuda-box" in comments


def test_chart_renders_as_png_too_for_a_look() -> None:
    # GIVEN the runs  WHEN rendered as PNG  THEN it is a PNG
    png = render_chart("memory", two_runs(), SCENARIOS, fmt="png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_memory_chart_uses_the_accelerator_counter_when_there_is_one() -> None:
    # GIVEN counters from a CUDA run and from a CPU run
    cuda = Memory(100, 5_000, 4_000, 2_000, 3_000, None, 2_000, "cuda_max_allocated")
    cpu = Memory(100, 5_000, None, None, None, None, 5_000, "process_peak_rss")
    # WHEN choosing the counter to chart
    # THEN CUDA max allocated wins; without anything else, process peak RSS
    assert memory_reading(cuda) == MemoryReading("CUDA max allocated", 2_000)
    assert memory_reading(cpu) == MemoryReading("process peak RSS", 5_000)


def _many_scenarios(count: int) -> list[RunRecord]:
    names = [f"scenario_with_a_long_name_{i:02d}" for i in range(count)]
    cpu = make_run([make_ok(name, step_time_s=0.2 + 0.01 * i) for i, name in enumerate(names)])
    cuda = make_run(
        [make_ok(name, step_time_s=0.05) for name in names[::2]],
        run_id="20261128T130000Z-finetune_sts-quick-0002",
        environment=make_environment("cuda-box", device_kind="cuda", device_name="H100"),
    )
    return [cpu, cuda]


@pytest.mark.parametrize("kind", ["throughput", "memory"])
def test_no_two_scenario_labels_overlap_at_fifteen_scenarios(
    kind: ChartKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 15 scenarios with long names on two environments
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from adrbench.reports import charts

    runs = _many_scenarios(15)
    scenarios = [r.name for r in runs[0].scenarios]
    drawn: list[Figure] = []
    real = charts._bars

    def keep(figure: Figure, *args: Any, **kwargs: Any) -> None:
        real(figure, *args, **kwargs)
        drawn.append(figure)

    monkeypatch.setattr(charts, "_bars", keep)
    # WHEN the bar chart is drawn and its text laid out
    render_chart(kind, runs, scenarios)
    (figure,) = drawn
    canvas = FigureCanvasAgg(figure)
    figure.draw_without_rendering()
    renderer = canvas.get_renderer()  # type: ignore[no-untyped-call]
    labels = figure.axes[0].get_yticklabels()
    boxes = [label.get_window_extent(renderer) for label in labels]
    # THEN every scenario has a label, and no two labels' boxes intersect
    assert sorted(label.get_text() for label in labels) == sorted(scenarios)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)


def test_a_bar_measured_once_is_marked_and_shows_the_prior_interval() -> None:
    # GIVEN one repetition of full (n = 1, one thread: a 2% speed prior)
    from adrbench.reports.charts import _bar

    run = make_run([make_ok("full", step_time_s=0.5)])
    bar = _bar(run.scenarios[0], "throughput")
    # THEN its whisker is the interval the verdicts use, not zero
    assert bar.n == 1 and bar.half_width > 0.0
    svg = render_chart("throughput", [run], ["full"]).decode("utf-8")
    assert "hatched: n = 1, prior interval" in svg


def test_the_break_even_chart_puts_each_point_beside_the_estimate_of_its_own_counter() -> None:
    # GIVEN the committed memory-scaling points (anonymous-RSS peaks)
    from adrbench.reports.memory_model import memory_points, render_break_even_chart

    points = memory_points(Path(__file__).parents[1] / "results")
    assert points
    comments = re.findall(r"<!-- (.*?) -->", render_break_even_chart(points).decode("utf-8"))
    # THEN every method with points shows them with the estimate of that same counter, and
    # says which points the constants were fitted on and which were held out
    for method in sorted({p.method for p in points}):
        assert f"{method} estimate of that counter" in comments
        assert f"{method} measured, held out (anon RSS peak)" in comments
    assert "full measured, fitted on (anon RSS peak)" in comments
