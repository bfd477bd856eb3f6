"""A live line per scenario on a terminal; plain, sparse lines in CI logs."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from adrbench.results.record import ScenarioResult, Status

__all__ = ["ProgressDisplay"]


def _eta(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class ProgressDisplay:
    """Receives the worker's progress events. ``live`` rewrites one line (a terminal)."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._prefix = ""
        self._rate: float | None = None
        self._last_plain = -1.0
        self._started = time.monotonic()
        self._durations: list[float] = []  # wall time of each finished repetition
        self._index = 0
        self._count = 0

    def run_eta(self, scenario_eta: float) -> float:
        """Seconds until the whole run ends: this repetition's ETA plus, for each one still to
        come, the mean wall time of those finished (this one's expected total before any is)."""
        elapsed = time.monotonic() - self._started
        per = (
            sum(self._durations) / len(self._durations)
            if self._durations
            else elapsed + scenario_eta
        )
        return scenario_eta + per * max(self._count - self._index, 0)

    def _write(self, text: str, *, final: bool = False) -> None:
        if self.live:
            end = "\n" if final else ""
            self.stream.write(f"\r\x1b[2K{text}{end}")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def scenario_started(self, index: int, count: int, name: str) -> None:
        self._prefix = f"[{index}/{count}] {name}"
        self._index, self._count = index, count
        self._rate = None
        self._last_plain = -1.0
        self._started = time.monotonic()
        self._write(f"{self._prefix}: starting")

    def event(self, event: dict[str, Any]) -> None:
        phase = event.get("phase")
        if phase != "train" or not event.get("total"):
            words = {"load": "loading", "evaluate": "evaluating", "serve": "serving requests"}
            if phase in words:
                self._write(f"{self._prefix}: {words[str(phase)]}")
            return
        step, total = int(event["step"]), int(event["total"])
        rate = float(event["batch"]) / max(float(event["step_s"]), 1e-9)
        self._rate = rate if self._rate is None else 0.9 * self._rate + 0.1 * rate
        eta = (total - step) * float(event["batch"]) / self._rate
        line = (
            f"{self._prefix}: step {step}/{total}  {self._rate:.1f} samples/s  ETA {_eta(eta)}"
            f"  run ETA {_eta(self.run_eta(eta))}"
        )
        if self.live:
            self._write(line)
        elif step == total or step / total >= self._last_plain + 0.1:  # every 10% in logs
            self._last_plain = step / total
            self._write(line)

    def scenario_done(self, result: ScenarioResult) -> None:
        self._durations.append(time.monotonic() - self._started)
        took = _eta(self._durations[-1])
        if result.status is Status.OK and result.metrics is not None:
            t = result.metrics.throughput
            detail = f"ok, {t.samples_per_s:.1f} samples/s"
        elif result.status is Status.OK and result.serving is not None:
            s = result.serving
            per_s = s.request_batch * len(s.encode_times_s) / sum(s.encode_times_s)
            detail = f"ok, {s.resident_bytes / 2**20:.0f} MiB resident, {per_s:.0f} sentences/s"
        elif result.skip is not None:
            detail = f"skipped ({result.skip.reason}): {result.skip.message}"
        else:
            assert result.failure is not None
            detail = f"FAILED ({result.failure.kind.value}): {result.failure.message}"
        self._write(f"{self._prefix}: {detail} [{took}]", final=True)
