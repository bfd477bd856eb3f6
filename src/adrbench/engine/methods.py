"""Training methods as a registry: ``full``, ``lora`` and ``qlora`` share one code path.

Each entry answers two questions with the same signatures: can this scenario run here
(``requirement`` -> None or a ``Skip``), and how to build its trainable model (``build``).
Full fine-tuning is just the entry that freezes nothing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from adrbench.engine.allocator import cap_mmap_threshold
from adrbench.engine.device import DeviceProbe
from adrbench.engine.models import load_sentence_transformer
from adrbench.engine.scenario import Scenario
from adrbench.results.record import Skip

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

__all__ = ["METHODS", "Method", "get_method", "load_base", "register_method"]

Requirement = Callable[[Scenario, DeviceProbe], Skip | None]
Builder = Callable[[Scenario, str], "SentenceTransformer"]


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    description: str
    requirement: Requirement
    build: Builder


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(
            f"training method {method.name!r} is already registered "
            f"({METHODS[method.name].description!r}); register yours under another name"
        )
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(METHODS)}") from None


def _runs_anywhere(scenario: Scenario, probe: DeviceProbe) -> Skip | None:
    return None


def _add_lora(model: SentenceTransformer, scenario: Scenario) -> SentenceTransformer:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=scenario.lora.r,
        lora_alpha=scenario.lora.alpha,
        lora_dropout=scenario.lora.dropout,
        target_modules=list(scenario.lora.target_modules),
    )
    # get_peft_model injects the adapters into the inner transformer in place and freezes the
    # rest; the sentence-transformers wrapper (pooling, normalisation) keeps working unchanged.
    get_peft_model(_inner_transformer(model), config)
    return model


def _inner_transformer(model: SentenceTransformer) -> torch.nn.Module:
    return cast("torch.nn.Module", model[0].auto_model)


def _build_full(scenario: Scenario, device: str) -> SentenceTransformer:
    model = load_sentence_transformer(scenario.model, device)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


def _build_lora(scenario: Scenario, device: str) -> SentenceTransformer:
    return _add_lora(load_sentence_transformer(scenario.model, device), scenario)


def _qlora_requirement(scenario: Scenario, probe: DeviceProbe) -> Skip | None:
    # transformers no longer refuses 4-bit on CPU and bitsandbytes >= 0.47 runs NF4 there, so
    # nothing downstream would skip QLoRA for us: the decision is made here, explicitly.
    if not probe.cuda_available and not scenario.allow_cpu_qlora:
        return Skip(
            reason="cuda_unavailable",
            message=(
                f"QLoRA runs only on CUDA and this machine's device is {probe.describe()}; "
                "pass --allow-cpu-qlora to run it through bitsandbytes' CPU backend as evidence"
            ),
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        return Skip(
            reason="bitsandbytes_missing",
            message="QLoRA needs bitsandbytes; install it with `pip install 'adrbench[qlora]'`",
        )
    return None


def _load_quantized(scenario: Scenario, device: str) -> SentenceTransformer:
    """The heavy part of QLoRA: load the base transformer with NF4 4-bit weights."""
    import torch
    from transformers import BitsAndBytesConfig

    compute_dtype = torch.bfloat16 if scenario.dtype == "bfloat16" else torch.float32
    if scenario.dtype == "float16":
        compute_dtype = torch.float16
    quantization: dict[str, Any] = {
        "quantization_config": BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    }
    return load_sentence_transformer(scenario.model, device, model_kwargs=quantization)


def load_base(scenario: Scenario, device: str) -> SentenceTransformer:
    """The untrained base model a method starts from (qlora: NF4 4-bit weights), for serving."""
    if scenario.method == "qlora":
        if device == "cpu":
            cap_mmap_threshold()  # as for training: quantizing frees an fp32 copy of each weight
        return _load_quantized(scenario, device)
    return load_sentence_transformer(scenario.model, device)


def _build_qlora(scenario: Scenario, device: str) -> SentenceTransformer:
    from peft import prepare_model_for_kbit_training

    if device == "cpu":
        # Quantizing frees an fp32 copy of every weight; without this glibc keeps them resident
        # (engine/allocator.py). On CUDA those copies live in the caching allocator instead.
        cap_mmap_threshold()
    model = _load_quantized(scenario, device)
    if device == "cpu":
        # bitsandbytes 0.50 repacks 4-bit weights for its AVX512-BF16 inference kernel the first
        # time a layer runs in eval mode; that kernel then also serves training and fails on an
        # in-place bias add ("a view of a leaf Variable ... in-place"). Evaluating before training
        # is part of every scenario, so keep the trainable layout.
        for module in model.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                setattr(module, "support_avx512bf16_for_cpu", False)  # noqa: B010
    prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
        _inner_transformer(model), use_gradient_checkpointing=False
    )
    return _add_lora(model, scenario)


register_method(
    Method("full", "standard fine-tuning: every weight trains", _runs_anywhere, _build_full)
)
register_method(Method("lora", "LoRA adapters on a frozen fp32 base", _runs_anywhere, _build_lora))
register_method(
    Method(
        "qlora",
        "LoRA adapters on a frozen NF4 4-bit base (CPU: glibc mmap threshold fixed at 1 MiB)",
        _qlora_requirement,
        _build_qlora,
    )
)
