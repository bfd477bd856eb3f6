"""Fit the CPU calibration of the memory model on the memory-scaling run's small points.

    python bench/fit_memory_model.py results/evidence/memory-scaling/runs/<id>.json [...]

Three constants (see ``adrbench.decisions.estimate.CALIBRATION``), fitted on the 22M and 110M
``full`` and ``lora`` points only, from the uncalibrated arithmetic:

* LoRA keeps every gradient small, so its two points give the fixed overhead F and the
  activation factor k exactly: measured = F + rest + k * activations;
* full fine-tuning's peak is dominated by gradients, moments and temporaries (G + O + T), so its
  two points give the allocator factor a as the mean of (measured - F - rest) / (G + O + T).

Every other point (335M, 730M, 1.3B) is validation: compare with ``adrbench estimate --against``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from adrbench.decisions.calibration import measured_points
from adrbench.results.store import load_run

FIT = ("22m", "110m")


def main(paths: list[str]) -> int:
    points = measured_points([load_run(Path(p)) for p in paths], calibrated=False)
    fit = {p.scenario: p for p in points if p.scenario.rsplit("_", 1)[-1] in FIT}
    lora = [fit[f"lora_{size}"] for size in FIT]
    acts = [p.estimate.components["activations"] for p in lora]
    rests = [
        p.measured_bytes - p.estimate.peak_bytes + p.estimate.components["activations"]
        for p in lora
    ]
    # rests = F + k * act (the uncalibrated peak already includes act once; remove it above)
    k = (rests[1] - rests[0]) / (acts[1] - acts[0])
    fixed = rests[0] - k * acts[0]
    factors = []
    for size in FIT:
        p = fit[f"full_{size}"]
        c = p.estimate.components
        state = c["gradients"] + c["optimizer"] + c["temporaries"]
        factors.append((p.measured_bytes - p.estimate.peak_bytes - fixed) / state)
    a = sum(factors) / len(factors)
    print(
        f"fixed_bytes = {fixed / 2**20:.0f} MiB, activation_factor = {k:.3f}, "
        f"allocator_factor = {a:.3f} (full points: {', '.join(f'{f:.3f}' for f in factors)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
