"""Stale evidence: whether a run still speaks for today's suite, training stack and measuring code.

A run is **stale** when, since it was made, a scenario's definition in its suite changed (or the
scenario left the suite), the installed training stack differs (judged only for this machine's
own runs: another machine's installed packages are not known here), or the measuring code
(``adrbench/engine/*.py``) changed. Each reason says exactly what changed. Reports, decisions, the
CLI and documentation are outside the measuring code, so changing them never makes evidence stale.

Runs recorded before schema 2 did not record the measuring code's hash nor their ``--set``
overrides: that is said as a note ("measuring code unknown (recorded before schema 2)"), so such a
run reads "no change found (not checked: ...)", never "fresh"; their scenario definitions and stack
are still compared, and a scenario that differs from the suite is stale ("differs from": it may be
a ``--set`` of the run rather than a change of the suite, which a run of schema 2 would tell).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adrbench.engine.scenario import Scenario
from adrbench.engine.suite import Override, load_suite, parse_override
from adrbench.errors import UserError
from adrbench.results.record import RunRecord

__all__ = ["Staleness", "judge_staleness"]

_NOT_MEASURED = ("timeout_s", "ballast_mb", "extra_step_work")


@dataclass(frozen=True, slots=True)
class Staleness:
    """What a run's evidence still speaks for.

    Args:
        reasons: What changed since the run, one sentence each; stale when any.
        notes: What could not be checked, one sentence each (not a reason to call it stale).
    """

    reasons: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def stale(self) -> bool:
        return bool(self.reasons)

    def summary(self) -> str:
        """One line: ``STALE: <reasons>``, ``fresh`` or ``no change found``, then what was not
        checked."""
        if self.reasons:
            head = "STALE: " + "; ".join(self.reasons)
        else:
            head = "no change found" if self.notes else "fresh"
        return head + (f" (not checked: {'; '.join(self.notes)})" if self.notes else "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys (``lora.r``), so a difference names the field that moved."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _differences(recorded: Scenario, current: Scenario) -> list[str]:
    before, after = _flat(recorded.to_mapping()), _flat(current.to_mapping())
    changed = []
    for key in sorted(set(before) | set(after)):
        if key in _NOT_MEASURED or before.get(key) == after.get(key):
            continue
        changed.append(f"{key} {_short(before.get(key))} -> {_short(after.get(key))}")
    return changed


def _suite_reasons(run: RunRecord, root: Path) -> tuple[list[str], list[str]]:
    provenance = run.provenance
    relative = (
        provenance.suite_file if provenance and provenance.suite_file else f"bench/{run.suite}.toml"
    )
    path = root / relative
    if not path.is_file():
        return [], [f"suite file {relative} not found, scenario definitions not compared"]
    overrides: list[Override] = []
    notes: list[str] = []
    if provenance is not None:
        overrides = [parse_override(f"{k}={v}") for k, v in provenance.overrides.items()]
    else:
        notes.append("--set overrides unknown (recorded before schema 2)")
    try:
        current = {s.name: s for s in load_suite(path).scenarios(run.profile, overrides=overrides)}
    except UserError as error:
        return [f"{relative} no longer gives profile {run.profile!r} ({error})"], notes
    recorded_fingerprints: Mapping[str, str] = (
        provenance.scenario_fingerprints
        if provenance is not None
        else {r.name: r.fingerprint for r in run.scenarios}
    )
    verb = (
        "changed in"
        if provenance is not None
        else "differs from"  # overrides unknown: a difference may be a --set, not a change
    )
    reasons = []
    differing: dict[str, list[str]] = {}  # what differs -> scenarios, so one line says it once
    for result in run.scenarios:
        scenario = current.get(result.name)
        if scenario is None:
            reasons.append(f"scenario {result.name!r} is no longer in {relative}")
            continue
        if result.scenario.allow_cpu_qlora and scenario.method == "qlora":
            scenario = dataclasses.replace(scenario, allow_cpu_qlora=True)  # a run flag
        if scenario.fingerprint() != recorded_fingerprints.get(result.name, result.fingerprint):
            what = ", ".join(_differences(result.scenario, scenario)) or "its fingerprint"
            differing.setdefault(what, []).append(result.name)
    for what, names in differing.items():
        label = "scenario" if len(names) == 1 else "scenarios"
        plural_verb = verb if len(names) == 1 or verb == "changed in" else "differ from"
        reasons.append(f"{label} {', '.join(names)} {plural_verb} {relative}: {what}")
    # A scenario added to the suite since is not a change to what the run measured: the run
    # simply has no evidence for it, which its verdicts show as unknown.
    return reasons, notes


def judge_staleness(
    run: RunRecord,
    *,
    root: Path,
    this_environment: str | None,
    installed: Mapping[str, str | None] | None = None,
    code_sha256: str | None = None,
) -> Staleness:
    """Whether ``run`` still speaks for the suite, stack and measuring code of today.

    Args:
        run: The run.
        root: The repository root (suite files are found relative to it).
        this_environment: This machine's environment fingerprint; only its own runs have their
            training stack compared with what is installed here. None: compare no stack (the
            reports, whose bytes must not depend on the machine that renders them).
        installed: Installed training-stack versions (default: read now).
        code_sha256: Hash of the measuring code (default: computed now).
    """
    from adrbench.engine.environment import (
        TRAINING_STACK,
        installed_versions,
        measuring_code_sha256,
    )

    reasons, notes = _suite_reasons(run, root)
    if run.environment.fingerprint == this_environment:
        now = installed if installed is not None else installed_versions()
        for package in TRAINING_STACK:
            then = run.environment.packages.get(package)
            if then != now.get(package):
                reasons.append(f"{package} {then or 'absent'} -> {now.get(package) or 'absent'}")
    elif this_environment is None:
        notes.append("training stack not compared here (`adrbench check` on its machine does)")
    else:
        notes.append("training stack not compared (another machine's installed packages)")
    if run.provenance is None:
        notes.append("measuring code unknown (recorded before schema 2)")
    else:
        code = code_sha256 or measuring_code_sha256()
        if code != run.provenance.measuring_code_sha256:
            reasons.append(
                "measuring code (src/adrbench/engine/*.py) changed: "
                f"{run.provenance.measuring_code_sha256[:12]} -> {code[:12]}"
            )
    return Staleness(tuple(reasons), tuple(notes))
