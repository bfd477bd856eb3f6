"""Run scenarios one fresh process each, with a timeout; always get a ScenarioResult back.

A fresh process makes every peak (RSS, CUDA allocator) the scenario's own and keeps a crash, an
out-of-memory kill or a hang from taking the other scenarios down with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from adrbench.engine.interrupt import (
    PARENT_PID_ENV,
    Interrupted,
    register_group,
    unregister_group,
)
from adrbench.engine.progress import ProgressDisplay
from adrbench.engine.scenario import Scenario
from adrbench.engine.worker import PROGRESS_PREFIX
from adrbench.errors import ResultsError
from adrbench.results.record import (
    Failure,
    FailureKind,
    ScenarioResult,
    Scores,
    Status,
    from_data,
    to_data,
)

__all__ = [
    "STDERR_TAIL_CHARS",
    "combine_repetitions",
    "run_isolated",
    "run_scenarios",
    "zero_shot_key",
]

STDERR_TAIL_CHARS = 4000
_OOM_MARKERS = ("MemoryError", "OutOfMemoryError", "out of memory", "Cannot allocate memory")


def _failure(
    scenario: Scenario, kind: FailureKind, type_: str, message: str, tail: str
) -> ScenarioResult:
    return ScenarioResult.of(
        scenario, failure=Failure(kind=kind, type=type_, message=message, stderr_tail=tail)
    )


def _pump(stream: object, display: ProgressDisplay | None, passthrough: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        if line.startswith(PROGRESS_PREFIX):
            if display is not None:
                with contextlib.suppress(json.JSONDecodeError):  # progress is best-effort
                    display.event(json.loads(line[len(PROGRESS_PREFIX) :]))
        else:
            passthrough.append(line)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def zero_shot_key(scenario: Scenario) -> tuple[object, ...]:
    """What the zero-shot ("before") scores depend on: the untrained model as evaluated and the
    evaluation data. Not the seed (the evaluation subset is fixed), and not full vs LoRA: LoRA's
    B matrices start at zero, so the untrained LoRA model computes the base model's function
    exactly (the committed full-profile run has bit-identical before scores for full, lora and
    full_cosent). QLoRA's 4-bit base is a different model, so it keys separately."""
    return (
        scenario.model,
        scenario.method == "qlora",
        scenario.dtype,
        scenario.device,
        scenario.max_seq_length,
        scenario.eval_pairs,
        scenario.allow_cpu_qlora,
    )


def run_isolated(
    scenario: Scenario,
    *,
    data_dir: Path | None = None,
    display: ProgressDisplay | None = None,
    python: str = sys.executable,
    worker: Sequence[str] = ("-m", "adrbench.engine.worker"),
    before: Mapping[str, Scores] | None = None,
) -> ScenarioResult:
    """Run one scenario in a child process (``python worker... SCENARIO RESULT``).

    ``before``: zero-shot scores measured earlier in this run to reuse (see :func:`zero_shot_key`).
    """
    with tempfile.TemporaryDirectory(prefix="adrbench-") as tmp:
        scenario_path = Path(tmp) / "scenario.json"
        result_path = Path(tmp) / "result.json"
        stderr_path = Path(tmp) / "stderr.txt"
        scenario_path.write_text(json.dumps(scenario.to_mapping()), encoding="utf-8")
        command = [python, *worker, str(scenario_path), str(result_path)]
        if data_dir is not None:
            command += ["--data-dir", str(data_dir)]
        if before is not None:
            before_path = Path(tmp) / "before.json"
            before_path.write_text(json.dumps(to_data(before)), encoding="utf-8")
            command += ["--before", str(before_path)]
        # The worker watches this pid and ends itself if the runner dies (engine/interrupt.py).
        env = {**os.environ, "PYTHONUNBUFFERED": "1", PARENT_PID_ENV: str(os.getpid())}
        with stderr_path.open("w", encoding="utf-8") as stderr:
            child = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
                start_new_session=True,  # so a timeout kills the whole process group
            )
            register_group(child.pid)  # its pid is its group id (a new session)
            stdout_lines: list[str] = []
            reader = threading.Thread(target=_pump, args=(child.stdout, display, stdout_lines))
            reader.start()
            timed_out = False
            try:
                try:
                    child.wait(timeout=scenario.timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    _kill_group(child.pid)
                    child.wait()
                reader.join()
            except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP (see engine/interrupt.py)
                _kill_group(child.pid)
                child.wait()
                reader.join()
                raise
            finally:
                unregister_group(child.pid)
        tail = stderr_path.read_text(encoding="utf-8", errors="replace")[-STDERR_TAIL_CHARS:]
        if timed_out:
            return _failure(
                scenario,
                FailureKind.TIMEOUT,
                "Timeout",
                f"no result after timeout_s={scenario.timeout_s:g}; the process was killed",
                tail,
            )
        if result_path.exists():
            try:
                data = json.loads(result_path.read_text(encoding="utf-8"))
                return from_data(ScenarioResult, data, source=f"worker result of {scenario.name!r}")
            except (json.JSONDecodeError, ResultsError) as error:
                return _failure(scenario, FailureKind.CRASH, type(error).__name__, str(error), tail)
        code = child.returncode
        if code == -signal.SIGKILL or any(marker in tail for marker in _OOM_MARKERS):
            return _failure(
                scenario,
                FailureKind.OUT_OF_MEMORY,
                "OutOfMemory",
                f"the process ended with {'SIGKILL' if code == -signal.SIGKILL else f'exit {code}'}"
                " and no result: out of memory (SIGKILL is what the kernel's OOM killer sends); "
                "lower batch_size or max_seq_length",
                tail,
            )
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return _failure(
            scenario,
            FailureKind.CRASH,
            "Crash",
            f"the process ended with {how} and no result",
            tail,
        )


def combine_repetitions(
    scenario: Scenario, repetitions: Sequence[ScenarioResult]
) -> ScenarioResult:
    """One scenario's result from its repetitions' results (in seed order).

    A single repetition is returned as it is. Otherwise the result carries every repetition, the
    :func:`~adrbench.results.metrics.summarize` aggregate, the first repetition's fingerprint, and
    the first repetition's outcome (or the first failure, so a repetition that failed is never
    hidden behind the others).
    """
    if len(repetitions) == 1:
        return repetitions[0]
    from adrbench.results.metrics import summarize

    failed = [r for r in repetitions if r.status is Status.FAILED]
    head = failed[0] if failed else repetitions[0]
    return dataclasses.replace(
        head,
        name=scenario.name,
        # Always the first repetition's: the scenario's identity for the gate, whichever
        # repetition's outcome is shown (a baseline is keyed by it).
        fingerprint=repetitions[0].fingerprint,
        scenario=scenario,
        repetitions=tuple(repetitions),
        aggregate=summarize(repetitions),
    )


def run_scenarios(
    scenarios: Sequence[Scenario],
    *,
    data_dir: Path | None = None,
    display: ProgressDisplay | None = None,
) -> tuple[ScenarioResult, ...]:
    """Run each repetition of each scenario in its own process, in turn.

    On Ctrl-C, SIGTERM or SIGHUP (when the caller runs this inside
    :func:`adrbench.engine.interrupt.interruptible`) the running child's process group is killed
    and it and every repetition not yet run are recorded ``canceled``, so the caller can still
    write what was measured (as an interrupted run).
    """
    plan = [(s, [s.repetition(seed) for seed in s.repetition_seeds()]) for s in scenarios]
    total = sum(len(reps) for _, reps in plan)
    zero_shot: dict[tuple[object, ...], Mapping[str, Scores]] = {}
    results: list[ScenarioResult] = []
    done: list[ScenarioResult] = []  # the repetitions of the scenario being run
    index = 0
    try:
        for scenario, reps in plan:
            done = []
            for rep in reps:
                index += 1
                label = scenario.name if len(reps) == 1 else f"{scenario.name} (seed {rep.seed})"
                if display is not None:
                    display.scenario_started(index, total, label)
                key = zero_shot_key(rep)
                result = run_isolated(
                    rep, data_dir=data_dir, display=display, before=zero_shot.get(key)
                )
                done.append(result)
                if display is not None:
                    display.scenario_done(result)
                if result.metrics is not None and result.metrics.before is not None:
                    zero_shot.setdefault(key, result.metrics.before)
                if result.status is Status.SKIPPED:
                    # A skip depends on the machine (no CUDA, no device), never on the seed: the
                    # other repetitions would skip the same way, so they are not started.
                    index += len(reps) - len(done)
                    break
            results.append(combine_repetitions(scenario, done))
            done = []
    except KeyboardInterrupt as interrupt:
        how = interrupt.name if isinstance(interrupt, Interrupted) else "SIGINT"
        why = "Ctrl-C" if how == "SIGINT" else how
        message = f"interrupted ({why}) before this scenario finished"
        current, current_reps = plan[len(results)]
        done += [ScenarioResult.canceled(rep, message) for rep in current_reps[len(done) :]]
        results.append(combine_repetitions(current, done))
        for pending, _reps in plan[len(results) :]:
            results.append(ScenarioResult.canceled(pending, message))
    return tuple(results)
