"""Fit the CPU calibration of the memory model on the memory-scaling run's small points.

    python bench/fit_memory_model.py results/evidence/memory-scaling/runs/<id>.json [...]

Four constants (see ``adrbench.decisions.estimate.CALIBRATION``), fitted on the 22M and 110M
``full`` and ``lora`` points only, from the uncalibrated arithmetic, against each point's counter
(``adrbench.decisions.calibration.CPU_COUNTERS``: the anonymous-RSS peak where the run has it) and
the part of the estimate that counter sees (``counted_bytes``):

* LoRA keeps every gradient small, so its two points give the fixed overhead F and the
  activation factor k exactly: measured = F + rest + k * activations;
* full fine-tuning's peak is dominated by gradients, moments and temporaries (G + O + T), so its
  two points give the allocator factor a as the mean of (measured - F - rest) / (G + O + T);
* with the anonymous-RSS peak, F is anonymous memory only; the file-backed part of the fixed
  overhead (the libraries' code pages, which RSS counts) is the mean over the two LoRA points of
  train peak RSS - anonymous peak - the mapped base weights, and is added to F.

Every other point (335M, 730M, 1.3B) is validation: the script prints every point's error with
the fitted constants, against its counter and (where the run has both) against the training-window
peak RSS with the whole estimate; ``adrbench estimate --against`` gives the same with the
committed constants. When several runs hold a scenario, the newest one's point is used.
"""

from __future__ import annotations

import sys
from pathlib import Path

from adrbench.decisions import estimate as model
from adrbench.decisions.calibration import ANON_COUNTER, Point, measured_points
from adrbench.reports.memory_model import latest_points
from adrbench.results.store import load_run

FIT = ("22m", "110m")


def _fit(points: list[Point], train_rss: dict[tuple[str, str], int]) -> model.Calibration:
    fit = {p.scenario: p for p in points if p.scenario.rsplit("_", 1)[-1] in FIT}
    lora = [fit[f"lora_{size}"] for size in FIT]
    acts = [p.estimate.components["activations"] for p in lora]
    # counted = F + rest + act uncalibrated (F = 0, k = 1); LoRA's transient is its activations
    rests = [
        p.measured_bytes - p.counted_bytes + p.estimate.components["activations"] for p in lora
    ]
    k = (rests[1] - rests[0]) / (acts[1] - acts[0])
    fixed = rests[0] - k * acts[0]
    factors = []
    for size in FIT:
        p = fit[f"full_{size}"]
        c = p.estimate.components
        sampled = max(c["activations"], c["gradients"])
        if p.counter != ANON_COUNTER:
            sampled = max(c["activations"], c["gradients"] + c["temporaries"])
        calibrated = p.counted_bytes - sampled + max(k * c["activations"], sampled)
        state = c["gradients"] + c["optimizer"] + c["temporaries"]
        factors.append((p.measured_bytes - calibrated - fixed) / state)
    a = sum(factors) / len(factors)
    file_bytes = 0.0
    if all(p.counter == ANON_COUNTER for p in lora):
        # RSS - anon - mapped weights: the file pages outside the checkpoint (library code)
        mapped = [p.estimate.components["weights"] for p in lora]  # LoRA: every base weight
        files = [
            train_rss[p.run_id, p.scenario] - p.measured_bytes - m
            for p, m in zip(lora, mapped, strict=True)
        ]
        file_bytes = sum(files) / len(files)
        print(f"file-backed fixed pages: {', '.join(f'{f / 2**20:.0f} MiB' for f in files)}")
    print(
        f"fixed_bytes = {(fixed + file_bytes) / 2**20:.0f} MiB (anonymous {fixed / 2**20:.0f} "
        f"MiB + file-backed {file_bytes / 2**20:.0f} MiB), activation_factor = {k:.3f}, "
        f"allocator_factor = {a:.3f} (full points: {', '.join(f'{f:.3f}' for f in factors)})"
    )
    return model.Calibration(
        fixed_bytes=round((fixed + file_bytes) / 2**20) * 2**20,
        activation_factor=round(k, 2),
        allocator_factor=round(a, 3),
        file_bytes=round(file_bytes / 2**20) * 2**20,
    )


def main(paths: list[str]) -> int:
    runs = [load_run(Path(p)) for p in paths]
    train_rss = {
        (run.run_id, r.name): r.metrics.memory.train_peak_rss_bytes or 0
        for run in runs
        for r in run.scenarios
        if r.metrics is not None
    }
    calibration = _fit(latest_points(measured_points(runs, calibrated=False)), train_rss)
    print(f"rounded: {calibration}")
    # Validation with the fitted constants (as if committed).
    model.CALIBRATION["cpu"] = calibration
    print(
        f"{'scenario':<12} {'counter':<26} {'measured':>9} {'counted':>9} {'error':>7}  rss-error"
    )
    for p in latest_points(measured_points(runs)):
        rss = train_rss.get((p.run_id, p.scenario), 0)
        rss_error = f"{(p.estimate.peak_bytes - rss) / rss:+.1%}" if rss else "—"
        print(
            f"{p.scenario:<12} {p.counter:<26} {p.measured_bytes / 2**20:>8.0f}M "
            f"{p.counted_bytes / 2**20:>8.0f}M {p.error:>+7.1%}  {rss_error}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
