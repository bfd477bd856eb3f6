"""Suites: TOML files in ``bench/`` naming the scenarios that are evidence for ADRs.

Layout (later tables override earlier ones, then the result is validated as a Scenario; a
``serve`` table is merged field by field, so ``[defaults.serve]`` can hold what every serving
scenario shares and each scenario names only its ``adapters``)::

    name = "finetune_sts"
    [defaults]            # every scenario, every profile
    [profiles.quick]      # every scenario under --profile quick
    [[scenario]]          # one scenario; may carry its own [scenario.profiles.quick]
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adrbench.engine.scenario import Scenario
from adrbench.errors import ScenarioError

__all__ = ["Override", "Suite", "apply_overrides", "load_suite", "parse_override"]

_SUITE_KEYS = {"name", "description", "defaults", "profiles", "scenario"}


@dataclass(frozen=True, slots=True)
class Override:
    """One ``--set KEY=VALUE``: ``key`` may be dotted for a nested field (``lora.r``).

    Args:
        key: The field, e.g. ``max_steps`` or ``lora.target_modules``.
        value: The value, read as TOML (``[query,value]``: a list of words), else text.
        text: What the user typed, for messages.
    """

    key: str
    value: Any
    text: str


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """``data`` with each override set; a dotted key changes one field of a nested table and
    keeps its other fields (``lora.r=4`` keeps the suite's ``lora.alpha``)."""
    merged = dict(data)
    for override in overrides:
        head, _, rest = override.key.partition(".")
        if not rest:
            merged[head] = override.value
            continue
        table = merged.get(head, {})
        nested = dict(table) if isinstance(table, Mapping) else {}
        nested[rest] = override.value
        merged[head] = nested
    return merged


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    description: str
    path: Path
    defaults: Mapping[str, Any]
    profiles: Mapping[str, Mapping[str, Any]]
    entries: tuple[Mapping[str, Any], ...]

    def scenarios(
        self,
        profile: str,
        *,
        only: Sequence[str] = (),
        overrides: Sequence[Override] = (),
    ) -> tuple[Scenario, ...]:
        if profile not in self.profiles:
            raise ScenarioError(
                f"{self.path}: no profile {profile!r}; this suite has: {', '.join(self.profiles)}"
            )
        names = [str(e.get("name")) for e in self.entries]
        for wanted in only:
            if wanted not in names:
                close = difflib.get_close_matches(wanted, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ScenarioError(
                    f"{self.path}: no scenario {wanted!r}{hint} (--only takes one of: "
                    f"{', '.join(names)})"
                )
        for override in overrides:  # blame the override, not the suite file, for a bad value
            Scenario.from_mapping(
                apply_overrides({"name": "override"}, [override]), source=f"--set {override.text!r}"
            )
        built = []
        for index, entry in enumerate(self.entries):
            if only and entry.get("name") not in only:
                continue
            own = dict(entry)
            own_profiles = own.pop("profiles", {})
            layers = (self.defaults, self.profiles[profile], own, own_profiles.get(profile, {}))
            merged: dict[str, Any] = {}
            for layer in layers:
                merged.update(layer)
            serve = [layer["serve"] for layer in layers if "serve" in layer]
            if serve and all(isinstance(table, Mapping) for table in serve):
                merged["serve"] = {k: v for table in serve for k, v in table.items()}
            merged = apply_overrides(merged, overrides)
            if "lora" in merged and isinstance(merged["lora"], Mapping):
                merged["lora"] = dict(merged["lora"])
            built.append(Scenario.from_mapping(merged, source=f"{self.path}: scenario[{index}]"))
        return tuple(built)


def load_suite(path: Path) -> Suite:
    if path.is_dir():
        found = sorted(str(p) for p in path.glob("*.toml"))
        hint = f", e.g. {found[0]}" if found else ""
        raise ScenarioError(f"{path}: is a directory; name a suite file{hint}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such suite file; suites live in bench/*.toml") from None
    except UnicodeDecodeError as error:
        raise ScenarioError(
            f"{path}: not UTF-8 text (byte {error.start}); save the suite as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path}: invalid TOML: {error}") from None
    unknown = sorted(set(data) - _SUITE_KEYS)
    if unknown:
        raise ScenarioError(
            f"{path}: unknown top-level key {unknown[0]!r}; "
            f"allowed: {', '.join(sorted(_SUITE_KEYS))}"
        )
    entries = data.get("scenario", [])
    if not entries:
        raise ScenarioError(f"{path}: no [[scenario]] tables")
    names = [e.get("name") for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ScenarioError(f"{path}: scenario name {duplicates[0]!r} is used twice")
    suite = Suite(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        path=path,
        defaults=data.get("defaults", {}),
        profiles=data.get("profiles", {"default": {}}),
        entries=tuple(entries),
    )
    for profile in suite.profiles:  # validate every profile now, not when it is first used
        suite.scenarios(profile)
    return suite


def _words(value: str) -> list[str] | None:
    """``[query,value]`` (words without quotes, which TOML refuses) as a list of strings."""
    inner = value.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        return None
    return [w.strip().strip("'\"") for w in inner[1:-1].split(",") if w.strip()]


def parse_override(text: str) -> Override:
    """``KEY=VALUE`` from the command line (``--set``).

    KEY is a scenario field, or ``table.field`` for a nested one (``lora.r=4``). VALUE is read as
    TOML (``4``, ``true``, ``2e-5``, ``["query", "value"]``), then as a list of bare words
    (``[query,value]``), else taken as text.

    Raises:
        ScenarioError: no ``=``, an empty key, or ``name`` (it would give every scenario one name).
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(
            f"--set {text!r}: expected KEY=VALUE, e.g. --set max_steps=20 or --set lora.r=4"
        )
    if key == "name":
        raise ScenarioError(
            f"--set {text!r}: 'name' cannot be overridden (every scenario would get the same "
            "name); pick scenarios with --only NAME"
        )
    parsed: Any
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        words = _words(value)
        parsed = words if words is not None else value
    return Override(key, parsed, text)
