"""The memory estimate checked against measured runs: one point per ``ok`` scenario.

For each scenario the estimator gets what the scenario did (method, dtype, optimizer, LoRA rank
and targets, the device) and what the data made of it: a step trains on ``2 * batch_size``
sequences (a sentence pair is two) padded to the longest sentence of the batch, so the sequence
length is taken from the largest padded-token count of the timed steps. The measured peak is the
counter the device has (:data:`CPU_COUNTERS`): on the CPU the anonymous-RSS peak
(``train_peak_anon_rss_bytes``, schema 4) where the run has it, else the training-window peak RSS
(``train_peak_rss_bytes``), else the process peak; on CUDA ``max_memory_allocated``.

Each counter sees a part of the estimate (:func:`counted_bytes`), and a point's error is taken
against that part. Peak RSS and CUDA's max allocated see all of it. The anonymous-RSS peak does
not see file-backed pages, and it is sampled after the forward pass, the backward pass and the
optimizer step, so it leaves out three things the estimate holds:

* the frozen base weights: the engine loads a safetensors checkpoint through a private memory
  map, so a weight that is never written stays a page of the file (:func:`mapped_weight_bytes`):
  every base weight under ``lora``, the unquantized ones under ``qlora``; under ``full`` the
  optimizer writes every weight and copy-on-write makes it anonymous;
* the file-backed part of the fixed overhead (the libraries' code; ``Calibration.file_bytes``);
* the optimizer step's temporaries, alive only inside ``optimizer.step()``.

The estimate itself stays the whole peak, what a memory budget has to hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from adrbench.decisions.estimate import (
    CALIBRATION,
    Architecture,
    Estimate,
    Settings,
    estimate,
    named_shape,
)
from adrbench.errors import UserError
from adrbench.results.record import RunRecord, ScenarioResult, Status

__all__ = [
    "ANON_COUNTER",
    "CPU_COUNTERS",
    "Point",
    "architecture_for",
    "counted_bytes",
    "mapped_weight_bytes",
    "measured_points",
    "settings_for",
]

_RANDOM = "random:"
ANON_COUNTER = "train_peak_anon_rss_bytes"
# The CPU's counters, the first a scenario has wins: anonymous RSS (schema 4: no file pages, so
# neither the page cache nor the mapped checkpoint moves it), then the training-window peak RSS,
# then the process peak RSS (which includes loading).
CPU_COUNTERS = (ANON_COUNTER, "train_peak_rss_bytes", "peak_rss_bytes")


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
    counted_bytes: int

    @property
    def error(self) -> float:
        """(counted - measured) / measured: positive when the estimate is too high.

        ``counted_bytes`` is the part of the estimate the counter sees (the whole peak, except
        for the anonymous-RSS peak; see :func:`counted_bytes`).
        """
        return (self.counted_bytes - self.measured_bytes) / self.measured_bytes

    @property
    def variable_bytes(self) -> int:
        """The measured peak minus everything the estimate models except the fixed overhead."""
        return self.measured_bytes - (self.counted_bytes - self.estimate.components["fixed"])


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
    """The device's counter and its value: CUDA max allocated; on the CPU see CPU_COUNTERS."""
    assert result.metrics is not None
    memory = result.metrics.memory
    if result.metrics.device.startswith("cuda"):
        value = memory.cuda_max_allocated_bytes
        return ("cuda_max_allocated_bytes", value) if value is not None else None
    for counter in CPU_COUNTERS:
        measured = getattr(memory, counter)
        if measured is not None:
            return counter, int(measured)
    return None


def mapped_weight_bytes(arch: Architecture, settings: Settings) -> int:
    """Base weights that stay pages of the checkpoint's memory map through training (CPU).

    The engine keeps weights in the checkpoint's dtype (fp32) and safetensors maps the file
    privately: a weight read but never written stays a file page, one the optimizer writes
    becomes anonymous (copy-on-write). So: every base weight for ``lora``, the weights left
    unquantized (embeddings, norms, biases) for ``qlora`` (the 4-bit ones are new allocations),
    none for ``full``.
    """
    if settings.method == "full":
        return 0
    quantized = arch.linear_weights(quantized_only=True) if settings.method == "qlora" else 0
    return (arch.parameters - quantized) * 4


def counted_bytes(result: Estimate, counter: str, *, mapped_bytes: int = 0) -> int:
    """The part of an estimate that ``counter`` measures (see the module's docstring).

    Args:
        result: The estimate (its peak is the whole need).
        counter: The measured counter's name.
        mapped_bytes: Base weights that stay file pages (:func:`mapped_weight_bytes`).
    """
    if counter != ANON_COUNTER:
        return result.peak_bytes
    c = result.components
    file_bytes = CALIBRATION[result.settings.device].file_bytes if result.settings.calibrated else 0
    # the transient term as sampled: activations after the forward pass, gradients after the
    # backward pass; the step's temporaries are freed before the sample that follows it
    unseen = max(c["activations"], c["gradients"] + c["temporaries"]) - max(
        c["activations"], c["gradients"]
    )
    return result.peak_bytes - mapped_bytes - min(file_bytes, c["fixed"]) - unseen


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
            counter, value = measured
            result_estimate = estimate(arch, settings)
            points.append(
                Point(
                    run_id=run.run_id,
                    scenario=result.name,
                    method=result.scenario.method,
                    device=settings.device,
                    counter=counter,
                    measured_bytes=value,
                    estimate=result_estimate,
                    counted_bytes=counted_bytes(
                        result_estimate, counter, mapped_bytes=mapped_weight_bytes(arch, settings)
                    ),
                )
            )
    return points
