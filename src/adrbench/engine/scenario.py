"""A scenario: one fully resolved, validated training-and-measurement configuration.

Scenarios are data. A suite file in ``bench/`` gives defaults, per-profile overrides and the
scenarios; :func:`Scenario.from_mapping` merges nothing itself but validates everything, so a typo
fails at load time with the field, the value and the allowed values, never mid-run.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from adrbench.errors import ScenarioError
from adrbench.paths import portable_name

__all__ = [
    "BatchingName",
    "DTypeName",
    "DeviceName",
    "LoraSettings",
    "MethodName",
    "OptimizerImplName",
    "OptimizerName",
    "Scenario",
    "ServeSettings",
]

MethodName = Literal["full", "lora", "qlora"]
DeviceName = Literal["auto", "cpu", "cuda", "mps"]
DTypeName = Literal["float32", "bfloat16", "float16"]
BatchingName = Literal["shuffled", "length_grouped"]
OptimizerName = Literal["adamw", "sgd"]
OptimizerImplName = Literal["default", "foreach", "fused"]

# Speed levers added after results were first committed: while they keep their default they stay
# out of the fingerprint, so the scenarios measured before them remain comparable.
_LEVER_DEFAULTS: dict[str, object] = {
    "pretokenize": False,
    "optimizer_impl": "default",
    "compile": False,
}


def _choice(where: str, name: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ScenarioError(f"{where}: {name}={value!r} is not allowed; choose one of {options}")


def _positive(where: str, name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}: {name}={value!r} must be a number")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ScenarioError(f"{where}: {name}={value!r} must be {bound}")


@dataclass(frozen=True, slots=True)
class LoraSettings:
    """Low-rank adapter settings (used by ``lora`` and ``qlora``).

    Args:
        r: Rank of the update matrices.
        alpha: Scaling numerator; the update is scaled by ``alpha / r``.
        dropout: Dropout on the adapter input.
        target_modules: Names of the linear layers that get adapters (BERT: query, key, value,
            dense).
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("query", "key", "value", "dense")

    def __post_init__(self) -> None:
        where = "lora"
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ScenarioError(f"{where}: r={self.r!r} must be an integer >= 1")
        _positive(where, "alpha", self.alpha)
        if not 0 <= self.dropout < 1:
            raise ScenarioError(f"{where}: dropout={self.dropout!r} must be in [0, 1)")
        if not self.target_modules or not all(isinstance(m, str) for m in self.target_modules):
            raise ScenarioError(
                f"{where}: target_modules={self.target_modules!r} must be a non-empty list of "
                "module names, e.g. ['query', 'key', 'value', 'dense']"
            )


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Serving many fine-tuned variants of one model instead of training it (``serve`` table).

    The variants are LoRA adapters at the scenario's ``lora`` settings, each initialised at
    random from its own seed (peft's ``init_lora_weights=False``), so every variant computes a
    different function and variant ``i`` is the same in every scenario of that seed. Requests are
    batches of STS-B test sentences.

    Args:
        adapters: How many variants are served (N).
        merged: False: one base model holds all N adapters and a swap makes another one active
            (``method`` lora, or qlora for an NF4 base); True: N full copies of the model, each
            with its adapter merged in (``method`` lora), where a swap picks another copy.
        request_batch: Sentences per request.
        requests: Timed requests per mode (on one variant; with a swap before each).
        swaps: Timed swaps alone.
        warmup_requests: Untimed requests before timing (allocator, caches).
    """

    adapters: int = 1
    merged: bool = False
    request_batch: int = 32
    requests: int = 50
    swaps: int = 200
    warmup_requests: int = 3

    def __post_init__(self) -> None:
        where = "serve"
        for name in ("adapters", "request_batch", "requests", "swaps", "warmup_requests"):
            value = getattr(self, name)
            low = 0 if name == "warmup_requests" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ScenarioError(f"{where}: {name}={value!r} must be an integer >= {low}")
        if not isinstance(self.merged, bool):
            raise ScenarioError(f"{where}: merged={self.merged!r} must be true or false")


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything one isolated run needs. Every field is documented in ``help`` metadata.

    The testing knobs ``ballast_mb`` and ``extra_step_work`` inject a known regression; the gate
    calibration (``bench/gate_noise.py``) and the per-scenario memory test use them.
    """

    name: str = field(metadata={"help": "Unique name within the suite, e.g. 'lora'."})
    method: MethodName = field(default="lora", metadata={"help": "full | lora | qlora"})
    model: str = field(
        default="default",
        metadata={"help": "'default' (packaged all-MiniLM-L6-v2), an HF id or a local path."},
    )
    lora: LoraSettings = field(default_factory=LoraSettings)
    loss: str = field(
        default="CosineSimilarityLoss",
        metadata={"help": "Any sentence-transformers loss that takes (pair, score) batches."},
    )
    optimizer: OptimizerName = "adamw"
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = field(default=0.1, metadata={"help": "Linear LR warm-up fraction."})
    batch_size: int = 16
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training pairs."})
    max_steps: int | None = field(
        default=None, metadata={"help": "Stop after this many optimizer steps (caps epochs)."}
    )
    timing_warmup_steps: int = field(
        default=3, metadata={"help": "Steps run before timing starts (allocator, caches)."}
    )
    train_pairs: int | None = field(
        default=None, metadata={"help": "Use only the first N training pairs (None = all)."}
    )
    eval_pairs: int | None = field(
        default=None,
        metadata={"help": "Evaluate on a fixed seeded subset of N pairs per split (None = all)."},
    )
    eval_batch_size: int = 64
    evaluate_before: bool = field(
        default=True, metadata={"help": "Also evaluate the untrained model (zero-shot)."}
    )
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Truncate inputs to N tokens (None = model default)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of the first (or only) repetition."})
    repeats: int = field(
        default=1,
        metadata={
            "help": "Repetitions, each a fresh process with its own seed: seed, seed+1, ... "
            "(ignored when seeds is given). Not part of the fingerprint."
        },
    )
    seeds: tuple[int, ...] | None = field(
        default=None,
        metadata={"help": "Explicit seeds, one repetition each (overrides seed and repeats)."},
    )
    device: DeviceName = "auto"
    dtype: DTypeName = field(
        default="float32", metadata={"help": "float32, or autocast to bfloat16 / float16."}
    )
    batching: BatchingName = field(
        default="shuffled",
        metadata={"help": "shuffled, or length_grouped to cut padding."},
    )
    threads: int | None = field(
        default=None, metadata={"help": "torch.set_num_threads (None = torch default)."}
    )
    pretokenize: bool = field(
        default=False,
        metadata={
            "help": "Tokenise the training set once before training (outside the timed steps); "
            "each step only pads its batch. Batches equal on-the-fly tokenisation exactly."
        },
    )
    optimizer_impl: OptimizerImplName = field(
        default="default",
        metadata={
            "help": "AdamW implementation: default (torch's choice: the per-tensor loop on CPU, "
            "foreach on CUDA), foreach (multi-tensor) or fused (one kernel; CPU and CUDA)."
        },
    )
    compile: bool = field(
        default=False,
        metadata={
            "help": "torch.compile the transformer (inductor, dynamic shapes); skipped with the "
            "reason where it cannot compile here."
        },
    )
    timeout_s: float = field(default=1800.0, metadata={"help": "Kill the scenario after this."})
    allow_cpu_qlora: bool = field(
        default=False,
        metadata={
            "help": "Run qlora without CUDA through bitsandbytes' CPU backend (evidence only)."
        },
    )
    ballast_mb: int = field(
        default=0,
        metadata={"help": "Testing: hold a buffer of this many MB (10**6) during training."},
    )
    extra_step_work: float = field(
        default=0.0,
        metadata={"help": "Testing: busy-wait this fraction of each step's time (0.15 = +15%)."},
    )
    serve: ServeSettings | None = field(
        default=None,
        metadata={
            "help": "Measure serving N adapters (or N merged copies) of the model instead of "
            "training it: a table of ServeSettings, e.g. { adapters = 16 }."
        },
    )

    def __post_init__(self) -> None:
        where = f"scenario {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScenarioError(f"scenario name {self.name!r} must be a non-empty string")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ScenarioError(f"{where}: repeats={self.repeats!r} must be an integer >= 1")
        if self.seeds is not None:
            seeds = self.seeds
            if (
                not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
                or len(set(seeds)) != len(seeds)
            ):
                raise ScenarioError(
                    f"{where}: seeds={list(seeds)!r} must be a non-empty list of distinct "
                    "integers, e.g. [42, 43, 44]"
                )
            if self.repeats not in (1, len(seeds)):
                raise ScenarioError(
                    f"{where}: repeats={self.repeats!r} disagrees with seeds={list(seeds)!r}; "
                    "give one of them"
                )
        _choice(where, "method", self.method, get_args(MethodName))
        _choice(where, "optimizer", self.optimizer, get_args(OptimizerName))
        _choice(where, "device", self.device, get_args(DeviceName))
        _choice(where, "dtype", self.dtype, get_args(DTypeName))
        _choice(where, "batching", self.batching, get_args(BatchingName))
        _choice(where, "optimizer_impl", self.optimizer_impl, get_args(OptimizerImplName))
        for name in ("pretokenize", "compile"):
            if not isinstance(getattr(self, name), bool):
                value = getattr(self, name)
                raise ScenarioError(f"{where}: {name}={value!r} must be true or false")
        if self.optimizer_impl != "default" and self.optimizer != "adamw":
            raise ScenarioError(
                f"{where}: optimizer_impl={self.optimizer_impl!r} applies to AdamW only; "
                f"set optimizer='adamw' or optimizer_impl='default'"
            )
        if not isinstance(self.lora, LoraSettings):
            raise ScenarioError(f"{where}: lora={self.lora!r} must be a table of LoRA settings")
        if self.serve is not None:
            if not isinstance(self.serve, ServeSettings):
                raise ScenarioError(
                    f"{where}: serve={self.serve!r} must be a table of serve settings"
                )
            if self.method == "full":
                raise ScenarioError(
                    f"{where}: serve needs method 'lora' (adapters, or merged copies with "
                    "merged = true) or 'qlora' (adapters on an NF4 base), not 'full'"
                )
            if self.serve.merged and self.method != "lora":
                raise ScenarioError(
                    f"{where}: serve.merged = true merges each adapter into a full copy, which an "
                    f"NF4 base cannot hold; use method 'lora' or merged = false"
                )
        for name in ("model", "loss"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ScenarioError(f"{where}: {name}={value!r} must be a non-empty string")
        for name in ("learning_rate", "batch_size", "epochs", "eval_batch_size", "timeout_s"):
            _positive(where, name, getattr(self, name))
        for name in ("max_steps", "train_pairs", "eval_pairs", "max_seq_length", "threads"):
            _positive(where, name, getattr(self, name))
        for name in ("weight_decay", "timing_warmup_steps", "ballast_mb", "extra_step_work"):
            _positive(where, name, getattr(self, name), allow_zero=True)
        if not 0 <= self.warmup_ratio < 1:
            raise ScenarioError(f"{where}: warmup_ratio={self.warmup_ratio!r} must be in [0, 1)")
        ints = ("batch_size", "eval_batch_size", "timing_warmup_steps", "seed", "ballast_mb")
        for name in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ScenarioError(f"{where}: {name}={value!r} must be an integer")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "scenario") -> Scenario:
        """Build from plain data (a merged suite table or a results file), rejecting unknown keys.

        Args:
            data: Field values; ``lora`` may be a nested mapping, lists become tuples.
            source: Where the data came from, for error messages (e.g. ``bench/x.toml``).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ScenarioError(f"{source}: unknown scenario field {key!r}{hint}")
        values = dict(data)
        if isinstance(values.get("seeds"), list):
            values["seeds"] = tuple(values["seeds"])
        lora = values.get("lora")
        if isinstance(lora, Mapping):
            lora_known = {f.name for f in dataclasses.fields(LoraSettings)}
            unknown = sorted(set(lora) - lora_known)
            if unknown:
                raise ScenarioError(
                    f"{source}: unknown lora field {unknown[0]!r}; "
                    f"known: {', '.join(sorted(lora_known))}"
                )
            lora_values = dict(lora)
            if "target_modules" in lora_values:
                lora_values["target_modules"] = tuple(lora_values["target_modules"])
            try:
                values["lora"] = LoraSettings(**lora_values)
            except ScenarioError as error:
                raise ScenarioError(f"{source}: {error}") from None
        serve = values.get("serve")
        if isinstance(serve, Mapping):
            serve_known = {f.name for f in dataclasses.fields(ServeSettings)}
            unknown = sorted(set(serve) - serve_known)
            if unknown:
                raise ScenarioError(
                    f"{source}: unknown serve field {unknown[0]!r}; "
                    f"known: {', '.join(sorted(serve_known))}"
                )
            try:
                values["serve"] = ServeSettings(**serve)
            except ScenarioError as error:
                raise ScenarioError(f"{source}: {error}") from None
        if "name" not in values:
            raise ScenarioError(f"{source}: a scenario needs a 'name'")
        try:
            return cls(**values)
        except ScenarioError as error:
            raise ScenarioError(f"{source}: {error}") from None

    def to_mapping(self) -> dict[str, Any]:
        """Plain JSON-ready data; ``Scenario.from_mapping(s.to_mapping()) == s``."""
        data = dataclasses.asdict(self)
        data["lora"]["target_modules"] = list(self.lora.target_modules)
        if self.seeds is not None:
            data["seeds"] = list(self.seeds)
        return data

    def repetition_seeds(self) -> tuple[int, ...]:
        """The seed of each repetition: ``seeds``, else ``seed, seed + 1, ...`` (``repeats``)."""
        if self.seeds is not None:
            return self.seeds
        return tuple(self.seed + i for i in range(self.repeats))

    def repetition(self, seed: int) -> Scenario:
        """The single-process scenario one repetition runs: this one with ``seed`` and no
        repeats. Its fingerprint is that of a one-repetition scenario with this seed, so a
        repetition is comparable with the same scenario run once (the gate's baselines)."""
        return dataclasses.replace(self, seed=seed, repeats=1, seeds=None)

    def fingerprint(self) -> str:
        """Hash of everything that changes what is measured.

        Two results are comparable only when their fingerprints match (a changed benchmark is a
        new benchmark). ``timeout_s`` changes nothing that is measured, and the injection knobs
        stand in for a code change, which is exactly what the gate must compare across. A local
        model enters by its portable name (``/tmp/model`` as ``model``), never by its location.
        The speed levers count only when set, so scenarios recorded before they existed keep
        their hash. ``repeats`` and ``seeds`` say how often to measure, not what one repetition
        measures (each repetition's own ``seed`` is in its fingerprint), so they are left out too.
        """
        data = self.to_mapping()
        for name in ("timeout_s", "ballast_mb", "extra_step_work", "repeats", "seeds"):
            data.pop(name)
        # Where a local model lies on disk is not what is measured (adrbench.paths).
        data["model"] = portable_name(self.model)
        for name, default in _LEVER_DEFAULTS.items():
            if data[name] == default:
                data.pop(name)
        if data["serve"] is None:  # a training scenario: hashed as before serving existed
            data.pop("serve")
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
