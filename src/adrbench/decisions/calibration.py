"""The memory estimate checked against measured runs: one point per ``ok`` scenario.

For each scenario the estimator gets what the scenario did (method, dtype, optimizer, LoRA rank
and targets, the device) and what the data made of it: a step trains on ``2 * batch_size``
sequences (a sentence pair is two) padded to the longest sentence of the batch, so the sequence
length is taken from the largest padded-token count of the timed steps. The measured peak is the
counter the device has: CPU the training-window peak RSS (``train_peak_rss_bytes``, else the
process peak), CUDA ``max_memory_allocated``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from adrbench.decisions.estimate import (
    Architecture,
    Estimate,
    Settings,
    estimate,
    named_shape,
)
from adrbench.errors import UserError
from adrbench.results.record import RunRecord, ScenarioResult, Status

__all__ = ["Point", "architecture_for", "measured_points", "settings_for"]

_RANDOM = "random:"


@dataclass(frozen=True, slots=True)
class Point:
    """One measured scenario beside its estimate."""

    run_id: str
    scenario: str
    method: str
    device: str
    counter: str
    measured_bytes: int
    estimate: Estimate

    @property
    def error(self) -> float:
        """(estimate - measured) / measured: positive when the estimate is too high."""
        return (self.estimate.peak_bytes - self.measured_bytes) / self.measured_bytes

    @property
    def variable_bytes(self) -> int:
        """The measured peak minus everything the estimate models except the fixed overhead."""
        return self.measured_bytes - (self.estimate.peak_bytes - self.estimate.components["fixed"])


def architecture_for(
    model: str, *, shapes: Mapping[str, str] | None = None, root: Path | None = None
) -> Architecture:
    """The architecture of a scenario's ``model``: a named shape, ``random:PATH`` or a local dir.

    Args:
        model: The scenario's ``model`` field.
        shapes: model -> named shape, for runs whose model directory is not on this machine
            (e.g. ``{"/tmp/model": "minilm-l6"}`` for the H200 run).
        root: Where relative paths (``random:bench/shapes/...``) start; None: the working
            directory.
    """
    if shapes and model in shapes:
        return named_shape(shapes[model])
    if model == "default":
        return named_shape("minilm-l6")
    path = Path(model[len(_RANDOM) :] if model.startswith(_RANDOM) else model)
    if root is not None and not path.is_absolute():
        path = root / path
    if path.is_dir() or path.is_file():
        return Architecture.from_config(path)
    raise UserError(
        f"model {model!r}: no config.json here to read its shape; pass --shape-of {model}=NAME "
        "with a named shape (minilm-l6, llama-7b)"
    )


def settings_for(
    result: ScenarioResult, *, fixed_bytes: int | None = None, calibrated: bool = True
) -> Settings:
    """What the estimator needs to know about a measured scenario."""
    scenario, metrics = result.scenario, result.metrics
    assert metrics is not None  # callers pass ok scenarios
    sequences = 2 * scenario.batch_size
    padded = max(metrics.throughput.step_padded_tokens, default=0)
    seq_len = max(1, math.ceil(padded / sequences))
    return Settings(
        method=scenario.method,
        weight_dtype="float32",  # the engine keeps weights fp32 and autocasts the activations
        autocast=scenario.dtype != "float32",
        optimizer=scenario.optimizer,
        optimizer_impl=scenario.optimizer_impl,
        batch_size=sequences,
        seq_len=seq_len,
        lora_r=scenario.lora.r,
        lora_targets=scenario.lora.target_modules,
        lora_dropout=scenario.lora.dropout > 0,
        device="cuda" if metrics.device.startswith("cuda") else "cpu",
        fixed_bytes=fixed_bytes,
        calibrated=calibrated,
    )


def _measured(result: ScenarioResult) -> tuple[str, int] | None:
    assert result.metrics is not None
    memory = result.metrics.memory
    if result.metrics.device.startswith("cuda"):
        value = memory.cuda_max_allocated_bytes
        return ("cuda_max_allocated_bytes", value) if value is not None else None
    if memory.train_peak_rss_bytes is not None:
        return "train_peak_rss_bytes", memory.train_peak_rss_bytes
    return "peak_rss_bytes", memory.peak_rss_bytes


def measured_points(
    runs: Iterable[RunRecord],
    *,
    shapes: Mapping[str, str] | None = None,
    fixed_bytes: int | None = None,
    calibrated: bool = True,
    root: Path | None = None,
) -> list[Point]:
    """Every ``ok`` scenario of ``runs`` with its measured peak and its estimate."""
    points: list[Point] = []
    for run in runs:
        for result in run.scenarios:
            if result.status is not Status.OK or result.metrics is None:
                continue
            measured = _measured(result)
            if measured is None:
                continue
            arch = architecture_for(result.scenario.model, shapes=shapes, root=root)
            settings = settings_for(result, fixed_bytes=fixed_bytes, calibrated=calibrated)
            points.append(
                Point(
                    run_id=run.run_id,
                    scenario=result.name,
                    method=result.scenario.method,
                    device=settings.device,
                    counter=measured[0],
                    measured_bytes=measured[1],
                    estimate=estimate(arch, settings),
                )
            )
    return points
