"""The training loop: one screen, nothing hidden.

Batches come in a seeded order (``shuffled``, or ``length_grouped`` to cut padding), so two runs
of one scenario see the same batches at the same step index: per-step times are comparable
across runs. Only steps after ``timing_warmup_steps`` are timed, each ending with a device sync.
A timed step includes tokenising its batch, unless ``pretokenize`` did that once beforehand.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from adrbench.engine import measure
from adrbench.engine.data import StsSplit
from adrbench.engine.device import synchronize
from adrbench.engine.scenario import Scenario
from adrbench.engine.tokenized import TokenizedSentences
from adrbench.errors import ScenarioError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["TrainLog", "make_optimizer", "plan_batches", "planned_steps", "train"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True, slots=True)
class TrainLog:
    steps: int
    final_loss: float
    step_times_s: tuple[float, ...]  # timed steps only
    step_samples: tuple[int, ...]
    step_real_tokens: tuple[int, ...]
    step_padded_tokens: tuple[int, ...]
    mps_max_allocated_bytes: int | None
    mps_driver_max_allocated_bytes: int | None = None  # where torch exposes the driver's count
    peak_anon_rss_bytes: int | None = None  # sampled three times a step (measure.AnonPeak)


def planned_steps(scenario: Scenario, n_pairs: int) -> int:
    """Whole epochs of ``ceil(n_pairs / batch_size)`` batches each, then a fraction of one more.

    Counting whole epochs separately keeps each of them complete: every pair once per epoch.
    """
    whole = math.floor(scenario.epochs)
    per_epoch = math.ceil(n_pairs / scenario.batch_size)
    steps = whole * per_epoch + math.ceil((scenario.epochs - whole) * n_pairs / scenario.batch_size)
    return min(steps, scenario.max_steps) if scenario.max_steps is not None else steps


def plan_batches(
    n_pairs: int, scenario: Scenario, lengths: Sequence[int] | None = None
) -> list[list[int]]:
    """Index batches for the whole run, epoch after epoch, in a seeded order."""
    total = planned_steps(scenario, n_pairs)
    batches: list[list[int]] = []
    epoch = 0
    while len(batches) < total:
        rng = random.Random(scenario.seed + epoch)
        order = list(range(n_pairs))
        rng.shuffle(order)
        size = scenario.batch_size
        if scenario.batching == "length_grouped":
            if lengths is None:
                raise ValueError("length_grouped batching needs the pair lengths")
            # Sort within mega-batches of 50 batches: similar lengths share a batch (less
            # padding) while batch order stays random.
            mega = 50 * size
            grouped: list[list[int]] = []
            for start in range(0, n_pairs, mega):
                chunk = sorted(order[start : start + mega], key=lambda i: -lengths[i])
                grouped.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
            rng.shuffle(grouped)
            batches.extend(grouped)
        else:
            batches.extend(order[i : i + size] for i in range(0, n_pairs, size))
        epoch += 1
    return batches[:total]


def make_optimizer(
    parameters: list[torch.nn.Parameter], scenario: Scenario
) -> torch.optim.Optimizer:
    """The scenario's optimizer; ``optimizer_impl`` picks AdamW's per-tensor, foreach or fused code.

    ``default`` leaves the choice to torch (its per-tensor loop on a CPU, foreach on CUDA); torch
    2.4+ has a fused AdamW kernel on the CPU as well as on CUDA.
    """
    if scenario.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=scenario.learning_rate)
    return torch.optim.AdamW(
        parameters,
        lr=scenario.learning_rate,
        weight_decay=scenario.weight_decay,
        foreach=True if scenario.optimizer_impl == "foreach" else None,
        fused=True if scenario.optimizer_impl == "fused" else None,
    )


def _to_device(features: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}


def _busy_wait(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def train(
    model: SentenceTransformer,
    loss_fn: torch.nn.Module,
    data: StsSplit,
    scenario: Scenario,
    device: str,
    on_step: Callable[[int, int, float], None] = lambda step, total, seconds: None,
) -> TrainLog:
    lengths = None
    if scenario.batching == "length_grouped":
        tokenizer = model.tokenizer
        lengths = [
            len(a) + len(b)
            for a, b in zip(
                tokenizer(list(data.sentence1))["input_ids"],
                tokenizer(list(data.sentence2))["input_ids"],
                strict=True,
            )
        ]
    batches = plan_batches(len(data), scenario, lengths)
    if len(batches) <= scenario.timing_warmup_steps:
        raise ScenarioError(
            f"scenario {scenario.name!r}: {len(batches)} steps leave none to time after "
            f"timing_warmup_steps={scenario.timing_warmup_steps}; raise max_steps or epochs"
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable, scenario)
    tokenized: tuple[TokenizedSentences, TokenizedSentences] | None = None
    if scenario.pretokenize:  # once, before the first step: not part of any step's time
        tokenized = (
            TokenizedSentences.of(model, data.sentence1),
            TokenizedSentences.of(model, data.sentence2),
        )
    warmup = int(scenario.warmup_ratio * len(batches))
    schedule = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then linear decay to 0
        optimizer,
        lambda s: (
            (s + 1) / max(1, warmup)
            if s < warmup
            else max(0.0, (len(batches) - s) / max(1, len(batches) - warmup))
        ),
    )
    dtype = _DTYPES[scenario.dtype]
    device_type = device.split(":")[0]
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16 and device_type == "cuda")
    times: list[float] = []
    samples: list[int] = []
    real: list[int] = []
    padded: list[int] = []
    mps_peak: int | None = 0 if device_type == "mps" else None
    mps_driver_peak: int | None = None
    loss_value = float("nan")
    anon = measure.AnonPeak()

    model.train()
    for step, batch in enumerate(batches):
        start = time.perf_counter()
        if tokenized is not None:
            first = _to_device(tokenized[0].batch(batch), device)
            second = _to_device(tokenized[1].batch(batch), device)
        else:
            first = _to_device(model.preprocess([data.sentence1[i] for i in batch]), device)
            second = _to_device(model.preprocess([data.sentence2[i] for i in batch]), device)
        labels = torch.tensor([data.scores[i] for i in batch], device=device)
        with torch.autocast(device_type, dtype=dtype, enabled=dtype != torch.float32):
            loss = loss_fn([first, second], labels)
        anon.sample()  # activations held for backward
        scaler.scale(loss).backward()
        anon.sample()  # gradients
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(trainable, max_norm=1.0)
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        anon.sample()  # optimizer state (allocated at the first step)
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        elapsed = time.perf_counter() - start
        if scenario.extra_step_work:  # injected regression, for the gate's calibration
            _busy_wait(elapsed * scenario.extra_step_work)
            elapsed = time.perf_counter() - start
        loss_value = float(loss.detach())
        if mps_peak is not None:
            mps_peak = max(mps_peak, int(torch.mps.current_allocated_memory()))
            driver = measure.mps_driver_allocated_bytes()
            if driver is not None:
                mps_driver_peak = max(mps_driver_peak or 0, driver)
        if step >= scenario.timing_warmup_steps:
            times.append(elapsed)
            samples.append(len(batch))
            masks = (first["attention_mask"], second["attention_mask"])
            real.append(int(sum(int(m.sum()) for m in masks)))
            padded.append(int(sum(m.numel() for m in masks)))
        on_step(step + 1, len(batches), elapsed)
    if not math.isfinite(loss_value):
        raise FloatingPointError(f"training loss is {loss_value} after {len(batches)} steps")
    return TrainLog(
        steps=len(batches),
        final_loss=loss_value,
        step_times_s=tuple(times),
        step_samples=tuple(samples),
        step_real_tokens=tuple(real),
        step_padded_tokens=tuple(padded),
        mps_max_allocated_bytes=mps_peak,
        mps_driver_max_allocated_bytes=mps_driver_peak,
        peak_anon_rss_bytes=anon.peak_bytes,
    )
