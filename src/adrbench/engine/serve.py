"""Serving N fine-tuned variants of one model: one base with N LoRA adapters, or N merged copies.

A serving scenario (``serve`` set) is measured in the process the runner started for it, in
steps:

1. load the base model (``method`` lora: as stored; qlora: NF4 4-bit) and read the device's
   resident counter (:func:`resident_bytes`): ``base_bytes``;
2. build the N variants: adapter ``i`` added to the one base under its own name, or a copy of the
   base with adapter ``i`` merged in (``merged``). Adapter ``i`` is initialised at random from
   :func:`adapter_seed` (peft ``init_lora_weights=False``), so it is the same adapter in both
   approaches and every variant computes a different function;
3. serve one request on every variant (first-use allocations), then read the counter again:
   ``resident_bytes``;
4. time ``swaps`` swaps alone, ``requests`` requests on one variant, and ``requests`` requests
   each preceded by a swap to the next variant (round robin), reading the counter after every
   request: ``serve_peak_bytes``.

A swap is what a server does between two requests for different variants: ``set_adapter`` on the
base, or picking another copy (a list index: free, which is the point of paying for the copies).
"""

from __future__ import annotations

import copy
import functools
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

from adrbench.engine import measure
from adrbench.engine.device import synchronize
from adrbench.engine.methods import load_base
from adrbench.engine.scenario import Scenario, ServeSettings
from adrbench.results.record import Serving

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["Variants", "adapter_name", "adapter_seed", "build_variants", "measure_serving"]


def adapter_seed(seed: int, index: int) -> int:
    """The seed adapter ``index`` of a scenario with ``seed`` is drawn from (distinct for the
    seeds of neighbouring repetitions: 42, 43, ... each give their own adapters)."""
    return seed * 100_003 + index


def adapter_name(index: int) -> str:
    return f"adapter_{index}"


def _lora_config(scenario: Scenario) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=scenario.lora.r,
        lora_alpha=scenario.lora.alpha,
        lora_dropout=scenario.lora.dropout,
        target_modules=list(scenario.lora.target_modules),
        init_lora_weights=False,  # random A and B: a trained-looking adapter, not the identity
    )


def _inner(model: SentenceTransformer) -> torch.nn.Module:
    return cast("torch.nn.Module", model[0].auto_model)


@dataclass(slots=True)
class Variants:
    """The N servable variants and how to make one of them the active one.

    Args:
        models: The models requests run on: one (adapters) or N (merged copies).
        activate: Make variant ``i`` active and return the model that serves it.
    """

    models: Sequence[SentenceTransformer]
    activate: Callable[[int], SentenceTransformer]


def _with_adapters(base: SentenceTransformer, scenario: Scenario, count: int) -> Variants:
    from peft import get_peft_model

    config = _lora_config(scenario)
    torch.manual_seed(adapter_seed(scenario.seed, 0))
    # Injected into the inner transformer in place: the sentence-transformers wrapper (pooling,
    # normalisation) runs whichever adapter the LoRA layers have active.
    peft_model = get_peft_model(_inner(base), config, adapter_name=adapter_name(0))
    for index in range(1, count):
        torch.manual_seed(adapter_seed(scenario.seed, index))
        peft_model.add_adapter(adapter_name(index), config)

    def activate(index: int) -> SentenceTransformer:
        peft_model.set_adapter(adapter_name(index))
        return base

    return Variants(models=(base,), activate=activate)


def merge_adapter(model: SentenceTransformer, scenario: Scenario, index: int) -> None:
    """Merge adapter ``index`` of ``scenario`` into ``model``'s weights, in place."""
    from peft import get_peft_model

    torch.manual_seed(adapter_seed(scenario.seed, index))
    peft_model = get_peft_model(_inner(model), _lora_config(scenario), adapter_name=adapter_name(0))
    model[0].auto_model = peft_model.merge_and_unload()


def _merged_copies(base: SentenceTransformer, scenario: Scenario, count: int) -> Variants:
    # Copies are taken from the untouched base; the base itself becomes the last variant, so no
    # model is loaded and then freed (freed heap would blur the resident reading).
    models = [copy.deepcopy(base) for _ in range(count - 1)] + [base]
    for index, model in enumerate(models):
        merge_adapter(model, scenario, index)
    return Variants(models=tuple(models), activate=lambda index: models[index])


def build_variants(base: SentenceTransformer, scenario: Scenario) -> Variants:
    """The scenario's N variants of ``base`` (which the adapters approach modifies in place)."""
    assert scenario.serve is not None  # only serving scenarios come here
    count = scenario.serve.adapters
    if scenario.serve.merged:
        return _merged_copies(base, scenario, count)
    return _with_adapters(base, scenario, count)


def resident_source(device: str) -> str:
    """The counter :func:`resident_bytes` reads on ``device``."""
    if device.startswith("cuda"):
        return "cuda_allocated"
    if device == "mps":
        return "mps_allocated"
    return "anon_rss" if measure.anon_rss_bytes() is not None else "rss"


def resident_bytes(device: str) -> int:
    """Memory the device holds for this process now: CUDA / MPS allocated, on a CPU anonymous
    RSS (Linux; RSS elsewhere): memory the page cache cannot take back."""
    if device.startswith("cuda"):
        return int(torch.cuda.memory_allocated())
    if device == "mps":
        return int(torch.mps.current_allocated_memory())
    anon = measure.anon_rss_bytes()
    return anon if anon is not None else measure.rss_bytes()


class _Timer:
    """Times requests and swaps on ``device`` and keeps the highest resident reading."""

    def __init__(self, device: str, sentences: list[str], batch: int) -> None:
        self.device, self.sentences, self.batch = device, sentences, batch
        self.peak = resident_bytes(device)

    def encode(self, model: SentenceTransformer) -> None:
        model.encode(self.sentences, batch_size=self.batch, convert_to_tensor=True)
        synchronize(self.device)

    def request(self, run: Callable[[], object]) -> float:
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        self.peak = max(self.peak, resident_bytes(self.device))
        return seconds


def _timed_phases(
    variants: Variants, settings: ServeSettings, timer: _Timer
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    count = settings.adapters

    def swap_and_encode(index: int) -> None:
        timer.encode(variants.activate(index))

    swaps = tuple(
        timer.request(functools.partial(variants.activate, k % count))
        for k in range(settings.swaps)
    )
    model = variants.activate(0)
    for _ in range(settings.warmup_requests):
        timer.encode(model)
    one = functools.partial(timer.encode, model)
    encode = tuple(timer.request(one) for _ in range(settings.requests))
    encode_swap = tuple(
        timer.request(functools.partial(swap_and_encode, (k + 1) % count))
        for k in range(settings.requests)
    )
    return swaps, encode, encode_swap


def measure_serving(
    scenario: Scenario, device: str, sentences: Sequence[str], progress: Callable[[str], None]
) -> Serving:
    """Measure serving ``scenario.serve.adapters`` variants on ``device`` (steps: module doc).

    Args:
        scenario: A serving scenario (``serve`` set; ``method`` lora or qlora).
        device: The resolved device.
        sentences: The request: ``serve.request_batch`` sentences.
        progress: Receives the phase being entered (``load``, ``serve``).
    """
    settings = scenario.serve
    assert settings is not None  # the worker sends only serving scenarios here
    progress("load")
    start = time.perf_counter()
    with torch.no_grad():
        base = load_base(scenario, device)
        base.eval()
        gc.collect()
        base_bytes = resident_bytes(device)
        variants = build_variants(base, scenario)
    for model in variants.models:
        model.eval()
    load_s = time.perf_counter() - start
    timer = _Timer(device, list(sentences), settings.request_batch)
    for index in range(settings.adapters):  # every variant used once: first-use allocations
        timer.encode(variants.activate(index))
    gc.collect()
    resident = resident_bytes(device)
    timer.peak = resident
    progress("serve")
    swaps, encode, encode_swap = _timed_phases(variants, settings, timer)
    return Serving(
        device=device,
        model_id=scenario.model,
        adapters=settings.adapters,
        merged=settings.merged,
        resident_parameters=sum(measure.count_parameters(m)[0] for m in variants.models),
        memory_source=resident_source(device),
        base_bytes=base_bytes,
        resident_bytes=resident,
        serve_peak_bytes=timer.peak,
        swap_times_s=swaps,
        encode_times_s=encode,
        encode_swap_times_s=encode_swap,
        request_batch=settings.request_batch,
        load_s=load_s,
    )
