"""Baselines: one committed reference run per environment, suite and profile.

``results/baselines/<environment fingerprint>/<suite>-<profile>.json`` holds a whole results file
(same schema as ``results/runs/``). The gate picks the file matching the current run's machine, so
a laptop, a CUDA box and CPU CI each keep their own reference and timings are never compared
across machines by accident. Baselines are updated on purpose (``adrbench baseline update``) and
committed, so every change to a reference is visible in review.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from adrbench.errors import UserError, excerpt
from adrbench.results.names import confined, name_problem
from adrbench.results.record import RunRecord, ScenarioResult, Status, run_to_json
from adrbench.results.store import load_run
from adrbench.stats import median

__all__ = [
    "Baseline",
    "BaselineError",
    "baseline_key",
    "baseline_path",
    "baselines_dir",
    "find_baseline",
    "list_baselines",
    "load_baseline",
    "median_run",
    "save_baseline",
]


class BaselineError(UserError):
    """A baseline that is missing, misplaced, or cannot be recorded."""


@dataclass(frozen=True, slots=True)
class Baseline:
    """A stored baseline.

    Args:
        path: Its file.
        run: The run it holds.
    """

    path: Path
    run: RunRecord

    @property
    def key(self) -> str:
        """``<environment>/<suite>-<profile>``, the name ``--baseline`` accepts."""
        return baseline_key(self.run.environment.fingerprint, self.run.suite, self.run.profile)


def _safe(part: str, what: str) -> str:
    # These become path components; refuse anything that could escape results/baselines/.
    problem = name_problem(part)
    if problem is not None:
        raise BaselineError(f"{what} {excerpt(part)} cannot name a baseline file: {problem}")
    return part


def baselines_dir(results_dir: Path) -> Path:
    """``results_dir / "baselines"``.

    Args:
        results_dir: The results directory.
    """
    return results_dir / "baselines"


def baseline_key(environment: str, suite: str, profile: str) -> str:
    """The baseline's name: ``<environment>/<suite>-<profile>``.

    Args:
        environment: Environment fingerprint.
        suite: Suite name.
        profile: Profile name.
    """
    return f"{environment}/{suite}-{profile}"


def baseline_path(results_dir: Path, environment: str, suite: str, profile: str) -> Path:
    """Where the baseline of one environment, suite and profile lives.

    Args:
        results_dir: The results directory.
        environment: Environment fingerprint.
        suite: Suite name.
        profile: Profile name.
    """
    env = _safe(environment, "environment fingerprint")
    name = f"{_safe(suite, 'suite')}-{_safe(profile, 'profile')}.json"
    path = baselines_dir(results_dir) / env / name
    try:
        return confined(path, baselines_dir(results_dir))  # a linked folder could lead elsewhere
    except ValueError as error:
        raise BaselineError(f"{error}; a baseline is only ever written into baselines/") from None


def _read(path: Path) -> Baseline:
    run = load_run(path)
    environment = run.environment.fingerprint
    if path.parent.name != environment:
        raise BaselineError(
            f"{path}: holds a run of environment {environment!r} but sits in the directory of "
            f"{path.parent.name!r}; the gate would use it for the wrong machine — record it again "
            "with `adrbench baseline update --run RUN` and delete this file"
        )
    return Baseline(path=path, run=run)


def _refuse_serving(run: RunRecord) -> None:
    """The gate compares training (step time, training peak, accuracy): a serving run has none."""
    serving = [r.name for r in run.scenarios if r.scenario.serve is not None]
    if serving:
        raise BaselineError(
            f"run {run.run_id}: suite {run.suite} serves adapters ({', '.join(serving[:3])}"
            f"{', ...' if len(serving) > 3 else ''}) and the gate compares training runs; a "
            "baseline needs a run of a training suite such as bench/finetune_sts.toml"
        )


def save_baseline(run: RunRecord, results_dir: Path) -> Path:
    """Store ``run`` as the baseline of its environment, suite and profile (replacing any).

    Args:
        run: A clean run: no failed scenario and at least one ``ok`` one.
        results_dir: The results directory.

    Raises:
        BaselineError: the run was interrupted, has failed scenarios, measured nothing or is of
            a serving suite.
    """
    _refuse_serving(run)
    if run.interrupted is not None:
        raise BaselineError(
            f"run {run.run_id}: interrupted ({run.interrupted.signal or 'by a signal'}) before "
            "every scenario finished; a baseline must be a whole run — rerun `adrbench run`, "
            "then update the baseline"
        )
    failed = [r.name for r in run.scenarios if r.status is Status.FAILED]
    if failed:
        names = ", ".join(repr(n) for n in failed)
        raise BaselineError(
            f"run {run.run_id}: scenarios {names} failed; a baseline must be a clean run — fix "
            "them and rerun `adrbench run`, then update the baseline"
        )
    if not any(r.status is Status.OK for r in run.scenarios):
        raise BaselineError(
            f"run {run.run_id}: no scenario measured anything (all skipped); nothing to use as a "
            "baseline on this machine"
        )
    path = baseline_path(results_dir, run.environment.fingerprint, run.suite, run.profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(run_to_json(run))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # atomic: a reader sees the old baseline or the new, never half
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def _level(result: ScenarioResult) -> float:
    assert result.metrics is not None  # only called on ok results
    times = result.metrics.throughput.step_times_s
    return median(times) if times else 0.0


def median_run(runs: Sequence[RunRecord]) -> RunRecord:
    """One baseline from several runs of the same code: per scenario, the median run's result.

    A single baseline run caught by a burst of other work on the machine would make every later
    comparison look slower (or faster). With k runs, each scenario keeps the result whose median
    step time is the median of the k (the lower middle one for even k), memory and scores of the
    same process included, so one disturbed run cannot set the reference.

    Args:
        runs: Runs of one environment, suite and profile (at least one).

    Raises:
        BaselineError: the runs come from different machines, suites or profiles.
    """
    if not runs:
        raise BaselineError("no runs given; name at least one with --run")
    for run in runs:
        _refuse_serving(run)
    first = runs[0]
    for other in runs[1:]:
        same = other.environment.fingerprint == first.environment.fingerprint and (
            other.suite,
            other.profile,
        ) == (first.suite, first.profile)
        if not same:
            raise BaselineError(
                f"run {other.run_id} ({other.environment.fingerprint}/{other.suite}-"
                f"{other.profile}) cannot share a baseline with run {first.run_id} "
                f"({first.environment.fingerprint}/{first.suite}-{first.profile}); give runs of "
                "one machine, suite and profile"
            )
    if len(runs) == 1:
        return first
    chosen = []
    for result in first.scenarios:
        candidates = [
            r
            for run in runs
            for r in run.scenarios
            if r.name == result.name
            and r.fingerprint == result.fingerprint
            and r.status is Status.OK
        ]
        if result.status is not Status.OK or not candidates:
            chosen.append(result)
            continue
        ordered = sorted(candidates, key=_level)
        chosen.append(ordered[(len(ordered) - 1) // 2])
    return replace(first, run_id=f"{first.run_id}+median-of-{len(runs)}", scenarios=tuple(chosen))


def list_baselines(results_dir: Path) -> list[Baseline]:
    """Every stored baseline, sorted by key. A corrupt file is an error, never skipped.

    Args:
        results_dir: The results directory.
    """
    root = baselines_dir(results_dir)
    if not root.is_dir():
        return []
    found = [_read(p) for p in sorted(root.glob("*/*.json")) if not p.name.startswith(".")]
    return sorted(found, key=lambda b: b.key)


def load_baseline(results_dir: Path, environment: str, suite: str, profile: str) -> Baseline:
    """The baseline for this environment, suite and profile.

    Args:
        results_dir: The results directory.
        environment: Environment fingerprint of the run to be gated.
        suite: Its suite.
        profile: Its profile.

    Raises:
        BaselineError: there is none; the message lists the environments that have one.
    """
    path = baseline_path(results_dir, environment, suite, profile)
    if path.is_file():
        return _read(path)
    others = [
        b.run.environment.fingerprint
        for b in list_baselines(results_dir)
        if (b.run.suite, b.run.profile) == (suite, profile)
    ]
    known = f"; baselines exist for: {', '.join(others)}" if others else ""
    raise BaselineError(
        f"{path}: no baseline for environment {environment!r} (suite {suite!r}, profile "
        f"{profile!r}){known}; record one with `adrbench baseline update` after a clean run on "
        "this machine, and commit it"
    )


def find_baseline(spec: str, results_dir: Path) -> Baseline | None:
    """A baseline named ``<environment>/<suite>-<profile>`` or by its file path; None otherwise.

    Args:
        spec: What the user passed to ``--baseline``.
        results_dir: The results directory.
    """
    candidate = Path(spec)
    if candidate.is_file() and baselines_dir(results_dir).resolve() in candidate.resolve().parents:
        return _read(candidate)
    for baseline in list_baselines(results_dir):
        if baseline.key == spec:
            return baseline
    return None
