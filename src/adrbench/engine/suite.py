"""Suites: TOML files in ``bench/`` naming the scenarios that are evidence for ADRs.

Layout (later tables override earlier ones, then the result is validated as a Scenario)::

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

__all__ = ["Suite", "load_suite", "parse_override"]

_SUITE_KEYS = {"name", "description", "defaults", "profiles", "scenario"}


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
        overrides: Mapping[str, Any] | None = None,
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
                raise ScenarioError(f"{self.path}: no scenario {wanted!r}{hint}")
        built = []
        for index, entry in enumerate(self.entries):
            if only and entry.get("name") not in only:
                continue
            own = dict(entry)
            own_profiles = own.pop("profiles", {})
            merged: dict[str, Any] = {
                **self.defaults,
                **self.profiles[profile],
                **own,
                **own_profiles.get(profile, {}),
                **(overrides or {}),
            }
            if "lora" in merged and isinstance(merged["lora"], Mapping):
                merged["lora"] = dict(merged["lora"])
            built.append(Scenario.from_mapping(merged, source=f"{self.path}: scenario[{index}]"))
        return tuple(built)


def load_suite(path: Path) -> Suite:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such suite file; suites live in bench/*.toml") from None
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


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line; VALUE is read as TOML, else taken as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ScenarioError(f"--set {text!r}: expected KEY=VALUE, e.g. --set max_steps=20")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed
