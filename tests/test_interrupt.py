"""Real signals sent to a real ``adrbench run`` child on tiny scenarios.

Nothing here waits a fixed time for something to happen: each step waits for a line the run
prints or a condition on /proc, with a generous deadline (the machine may be loaded).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adrbench.engine.interrupt import Interrupted, exit_status, interruptible
from adrbench.results import store

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds worker processes through /proc (Linux)"
)

DEADLINE_S = 240.0
SRC = Path(__file__).resolve().parents[1] / "src"


def _suite(tmp_path: Path, tiny_model: Path) -> Path:
    # GIVEN a quick first scenario and a second one that would train for a very long time
    suite = tmp_path / "sig.toml"
    suite.write_text(
        f"""name = "sig"
[defaults]
model = {json.dumps(str(tiny_model))}
method = "full"
batch_size = 8
eval_pairs = 8
evaluate_before = false
timing_warmup_steps = 1
timeout_s = 900
[profiles.quick]
[[scenario]]
name = "quick"
max_steps = 2
[[scenario]]
name = "long"
epochs = 20000
[[scenario]]
name = "never"
max_steps = 2
""",
        encoding="utf-8",
    )
    return suite


@dataclass
class Run:
    process: subprocess.Popen[str]
    lines: queue.Queue[str]
    seen: list[str]
    tmp: Path
    results: Path

    def wait_for(self, text: str) -> None:
        end = time.monotonic() + DEADLINE_S
        while not any(text in line for line in self.seen):
            left = end - time.monotonic()
            assert left > 0, f"no line with {text!r} within {DEADLINE_S}s: {self.seen}"
            try:
                self.seen.append(self.lines.get(timeout=min(left, 5.0)))
            except queue.Empty:
                assert self.process.poll() is None or not self.lines.empty(), self.seen

    def workers(self) -> list[int]:
        return [pid for pid in _all_pids() if _is_worker_of(pid, self.tmp)]


def _all_pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _is_worker_of(pid: int, tmp: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    text = [part.decode(errors="replace") for part in cmdline]
    # A zombie has ended; only its exit status waits to be collected.
    return "adrbench.engine.worker" in text and str(tmp) in " ".join(text) and state != "Z"


def _start(tmp_path: Path, tiny_model: Path, tiny_stsb: Path) -> Run:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    results = tmp_path / "results"
    env = {
        **os.environ,
        "TMPDIR": str(scratch),  # the runner's temporary directories go here, and only here
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "adrbench.cli", "run", str(_suite(tmp_path, tiny_model))]
    command += ["--results-dir", str(results), "--data-dir", str(tiny_stsb)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return Run(process, lines, [], scratch, results)


def _wait_gone(pids: list[int], tmp: Path) -> list[int]:
    end = time.monotonic() + DEADLINE_S
    alive = pids
    while alive and time.monotonic() < end:
        time.sleep(0.2)
        alive = [p for p in alive if _is_worker_of(p, tmp)]
    return alive


@pytest.mark.parametrize(
    "signum",
    [
        # A real `adrbench run` child training the tiny model (~19 s here): with the slow tests,
        # which CI runs; the handler itself is covered in the default run by the unit tests above.
        pytest.param(signal.SIGTERM, id="SIGTERM", marks=pytest.mark.slow),
        pytest.param(signal.SIGHUP, id="SIGHUP", marks=pytest.mark.slow),
    ],
)
def test_a_signal_writes_finished_scenarios_and_cancels_the_rest(
    signum: signal.Signals, tmp_path: Path, tiny_model: Path, tiny_stsb: Path
) -> None:
    run = _start(tmp_path, tiny_model, tiny_stsb)
    try:
        # WHEN the first scenario has finished and the second is training
        run.wait_for("[1/3] quick: ok")
        run.wait_for("[2/3] long: step")
        workers = run.workers()
        assert workers, "the second scenario's worker should be running"
        run.process.send_signal(signum)
        code = run.process.wait(timeout=DEADLINE_S)
    finally:
        if run.process.poll() is None:
            run.process.kill()
    # THEN the command exits with the shell's status for that signal
    assert code == exit_status(signum), run.seen
    # AND the results file holds the finished scenario and the rest as canceled
    files = [p for p in (run.results / "runs").glob("*.json") if ".benchmark." not in p.name]
    assert len(files) == 1
    data = json.loads(files[0].read_text(encoding="utf-8"))
    scenarios = data["scenarios"]
    assert [s["name"] for s in scenarios] == ["quick", "long", "never"]
    assert scenarios[0]["status"] == "ok"
    message = f"interrupted ({signum.name}) before this scenario finished"
    for cancelled in scenarios[1:]:
        assert cancelled["status"] == "canceled"
        assert cancelled["failure"] is None
        assert cancelled["skip"] == {"reason": "canceled", "message": message}
    # AND the run says it was interrupted, and by what, so it is never taken as evidence
    assert data["interrupted"] == {"signal": signum.name}
    assert store.latest_run(run.results) is None
    # AND no worker survives, and no temporary directory is left behind
    assert _wait_gone(workers, run.tmp) == []
    assert sorted(p.name for p in run.tmp.iterdir()) == []


def test_a_worker_dies_when_its_runner_is_killed(
    tmp_path: Path, tiny_model: Path, tiny_stsb: Path
) -> None:
    run = _start(tmp_path, tiny_model, tiny_stsb)
    try:
        run.wait_for("[1/3] quick: starting")
        run.wait_for("[1/3] quick: loading")  # the worker has started and imported torch
        workers = run.workers()
        assert workers
        # WHEN the runner is killed outright (nothing of it can clean up)
        run.process.kill()
        run.process.wait(timeout=DEADLINE_S)
    finally:
        if run.process.poll() is None:
            run.process.kill()
    # THEN its worker does not go on training as an orphan
    assert _wait_gone(workers, run.tmp) == []


def _signal_self(signum: signal.Signals) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(5)  # a raising handler ends this long before


def test_interruptible_raises_once_then_defers_while_writing() -> None:
    with interruptible() as signals:
        with pytest.raises(Interrupted) as raised:
            _signal_self(signal.SIGTERM)
        assert raised.value.name == "SIGTERM"
        assert signals.first == signal.SIGTERM
    with interruptible() as signals:
        signals.defer = True
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.01)
        assert signals.received == [signal.SIGHUP]
    # AND the handlers are restored afterwards
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_interrupted_command_says_so_and_exits_with_the_signal_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import adrbench.commands.lint as lint_command
    from adrbench.cli import main

    def interrupted(args: object) -> int:
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(lint_command, "run", interrupted)
    assert main(["lint"]) == 143
    assert capsys.readouterr().err == "adrbench lint: interrupted (SIGTERM)\n"
