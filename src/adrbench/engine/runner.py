"""Run scenarios one fresh process each, with a timeout; always get a ScenarioResult back.

A fresh process makes every peak (RSS, CUDA allocator) the scenario's own and keeps a crash, an
out-of-memory kill or a hang from taking the other scenarios down with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
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
from adrbench.results.record import Failure, FailureKind, ScenarioResult, from_data

__all__ = ["STDERR_TAIL_CHARS", "run_isolated", "run_scenarios"]

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


def run_isolated(
    scenario: Scenario,
    *,
    data_dir: Path | None = None,
    display: ProgressDisplay | None = None,
    python: str = sys.executable,
    worker: Sequence[str] = ("-m", "adrbench.engine.worker"),
) -> ScenarioResult:
    """Run one scenario in a child process (``python worker... SCENARIO RESULT``)."""
    with tempfile.TemporaryDirectory(prefix="adrbench-") as tmp:
        scenario_path = Path(tmp) / "scenario.json"
        result_path = Path(tmp) / "result.json"
        stderr_path = Path(tmp) / "stderr.txt"
        scenario_path.write_text(json.dumps(scenario.to_mapping()), encoding="utf-8")
        command = [python, *worker, str(scenario_path), str(result_path)]
        if data_dir is not None:
            command += ["--data-dir", str(data_dir)]
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


def run_scenarios(
    scenarios: Sequence[Scenario],
    *,
    data_dir: Path | None = None,
    display: ProgressDisplay | None = None,
) -> tuple[ScenarioResult, ...]:
    """Run each scenario in turn. On Ctrl-C, SIGTERM or SIGHUP (when the caller runs this inside
    :func:`adrbench.engine.interrupt.interruptible`) the running child's process group is killed
    and it and every scenario not yet run are recorded ``failed/canceled``, so the caller can still
    write what was measured.
    """
    results: list[ScenarioResult] = []
    try:
        for index, scenario in enumerate(scenarios, start=1):
            if display is not None:
                display.scenario_started(index, len(scenarios), scenario.name)
            result = run_isolated(scenario, data_dir=data_dir, display=display)
            results.append(result)
            if display is not None:
                display.scenario_done(result)
    except KeyboardInterrupt as interrupt:
        how = interrupt.name if isinstance(interrupt, Interrupted) else "SIGINT"
        why = "Ctrl-C" if how == "SIGINT" else how
        message = f"interrupted ({why}) before this scenario finished"
        for pending in scenarios[len(results) :]:
            results.append(_failure(pending, FailureKind.CANCELED, "Interrupted", message, ""))
    return tuple(results)
