"""The engine end to end on a tiny model and a made-up STS-B: isolation, skips, failures."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from adrbench.engine import device as devices
from adrbench.engine import methods
from adrbench.engine.device import DeviceProbe
from adrbench.engine.runner import run_isolated, run_scenarios
from adrbench.engine.scenario import Scenario
from adrbench.engine.worker import run_scenario
from adrbench.results.record import (
    Failure,
    FailureKind,
    ScenarioResult,
    Scores,
    Skip,
    Status,
    to_data,
)

NO_CUDA = DeviceProbe(cuda_available=False, cuda_name=None, mps_available=False)
CUDA = DeviceProbe(cuda_available=True, cuda_name="Pretend GPU", mps_available=False)


def tiny(tiny_model: Path, **fields: object) -> Scenario:
    base: dict[str, object] = {
        "name": "tiny",
        "model": str(tiny_model),
        "method": "full",
        "max_steps": 6,
        "timing_warmup_steps": 2,
        "batch_size": 8,
        "eval_pairs": 16,
        "timeout_s": 300,
    }
    base.update(fields)
    return Scenario.from_mapping(base)


@pytest.mark.parametrize("method", sorted(m for m in methods.METHODS if m != "qlora"))
def test_every_cpu_method_trains_and_reports_every_measurement(
    method: str, tiny_model: Path, tiny_stsb: Path
) -> None:
    import io

    from adrbench.engine import measure
    from adrbench.engine.progress import ProgressDisplay

    # GIVEN a tiny model and six steps, two of them untimed, reporting to a log display
    scenario = tiny(tiny_model, method=method, learning_rate=1e-3)
    stream = io.StringIO()
    display = ProgressDisplay(stream, live=False)
    display.scenario_started(1, 2, "tiny")
    # WHEN it runs in-process
    result = run_scenario(scenario, data_dir=tiny_stsb, progress=display.event)
    display.scenario_done(result)
    # THEN it is ok, with four timed steps and every counter that exists on a CPU
    assert result.status is Status.OK, result.failure
    m = result.metrics
    assert m is not None
    assert len(m.throughput.step_times_s) == 4
    assert m.throughput.samples_per_s == pytest.approx(32 / sum(m.throughput.step_times_s))
    assert 0 < m.throughput.real_tokens_per_s <= m.throughput.padded_tokens_per_s
    assert m.memory.peak_rss_bytes >= m.memory.rss_before_train_bytes > 0
    assert m.memory.cuda_max_allocated_bytes is None
    assert m.compute.fraction_of_peak > 0
    assert m.before is not None and set(m.before) == set(m.after) == {"dev", "test"}
    assert m.after["test"].pairs == 16
    if method == "full":
        assert m.trainable_parameters == m.total_parameters
    else:
        assert 0 < m.trainable_parameters < m.total_parameters / 5
    # AND the display said what happened, each step's progress and how it ended
    lines = stream.getvalue().splitlines()
    assert lines[:2] == ["[1/2] tiny: starting", "[1/2] tiny: loading"]
    steps = [line.split()[3] for line in lines if ": step " in line]
    assert steps == ["1/6", "2/6", "3/6", "4/6", "5/6", "6/6"]
    assert "[1/2] tiny: evaluating" in lines
    assert lines[-1].startswith("[1/2] tiny: ok, ") and " samples/s [" in lines[-1]
    # AND its FLOP/s are the recorded formula (forward 2NT, activation gradients 2NT, weight
    # gradients 2N_trainable T) over the timed steps' padded tokens, N counted on the same model:
    # every 2-D weight outside the embeddings, adapters included
    assert measure.train_flops(1_000, 10, 7) == (4 * 1_000 + 2 * 10) * 7
    n, n_trainable = measure.matmul_parameters(methods.get_method(method).build(scenario, "cpu"))
    assert 0 < n_trainable <= n
    expected = sum(
        measure.train_flops(n, n_trainable, t) for t in m.throughput.step_padded_tokens
    ) / sum(m.throughput.step_times_s)
    assert m.compute.train_flops_per_s == pytest.approx(expected, rel=1e-9)
    assert m.compute.formula == measure.TRAIN_FLOPS_FORMULA


def test_qlora_without_cuda_is_skipped_with_its_reason_and_the_device_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devices, "probe_devices", lambda: NO_CUDA)
    result = run_scenario(Scenario(name="qlora", method="qlora"), progress=lambda e: None)
    assert result.status is Status.SKIPPED
    assert result.skip is not None
    assert result.skip.reason == "cuda_unavailable"
    assert result.skip.message == (
        "QLoRA runs only on CUDA and this machine's device is cpu (no CUDA or MPS device "
        "found); pass --allow-cpu-qlora to run it through bitsandbytes' CPU backend as evidence"
    )


class QuantizedLoadReached(Exception):
    pass


def test_qlora_takes_the_quantized_path_when_the_probe_reports_cuda(
    monkeypatch: pytest.MonkeyPatch, tiny_stsb: Path
) -> None:
    # GIVEN a machine that reports CUDA, and a heavy 4-bit load that only records it was reached
    monkeypatch.setattr(devices, "probe_devices", lambda: CUDA)

    def load(scenario: Scenario, device: str) -> None:
        raise QuantizedLoadReached(f"{scenario.name} on {device}")

    monkeypatch.setattr(methods, "_load_quantized", load)
    # WHEN the qlora scenario runs
    result = run_scenario(
        Scenario(name="qlora", method="qlora"), data_dir=tiny_stsb, progress=lambda e: None
    )
    # THEN the decision let it through to the NF4 load on cuda
    assert result.status is Status.FAILED
    assert result.failure is not None
    assert (result.failure.type, result.failure.message) == (
        "QuantizedLoadReached",
        "qlora on cuda",
    )


def test_cpu_qlora_opt_in_passes_the_cuda_check(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = Scenario(name="qlora", method="qlora", allow_cpu_qlora=True)
    assert methods.get_method("qlora").requirement(scenario, NO_CUDA) is None


def _fake_worker(code: str) -> tuple[str, ...]:
    return ("-c", code)


def test_a_crashing_scenario_is_recorded_failed_with_its_stderr_tail() -> None:
    worker = _fake_worker(
        "import sys; sys.stderr.write('Traceback: kaboom in step 3\\n'); sys.exit(3)"
    )
    result = run_isolated(Scenario(name="crash"), worker=worker)
    assert result.status is Status.FAILED
    assert result.failure is not None
    assert result.failure.kind is FailureKind.CRASH
    assert result.failure.message == "the process ended with exit status 3 and no result"
    assert result.failure.stderr_tail == "Traceback: kaboom in step 3\n"


def test_a_process_killed_by_sigkill_is_recorded_as_out_of_memory() -> None:
    worker = _fake_worker("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    result = run_isolated(Scenario(name="oom"), worker=worker)
    assert result.failure is not None
    assert result.failure.kind is FailureKind.OUT_OF_MEMORY
    assert result.failure.message.startswith("the process ended with SIGKILL and no result")


def test_a_scenario_past_its_timeout_is_killed_with_its_whole_process_group(
    tmp_path: Path,
) -> None:
    # GIVEN a child that reports, starts a grandchild in its process group, records the
    # grandchild's pid and then hangs. timeout_s=4 leaves a loaded 2-core machine ~40x the 0.1 s a
    # bare `python -c` needs to get there, and costs only wall time (the test sleeps, not computes)
    pid_file = tmp_path / "grandchild.pid"
    worker = _fake_worker(
        "import subprocess, sys, time\n"
        "sys.stderr.write('still going\\n'); sys.stderr.flush()\n"
        "g = subprocess.Popen(['sleep', '300'], stdout=subprocess.DEVNULL)\n"
        f"open({str(pid_file)!r}, 'w').write(str(g.pid))\n"
        "time.sleep(300)\n"
    )
    # WHEN it runs past its timeout
    result = run_isolated(Scenario(name="slow", timeout_s=4), worker=worker)
    # THEN it is recorded as a timeout with its stderr, and the grandchild died with it
    assert result.failure is not None
    assert result.failure.kind is FailureKind.TIMEOUT
    assert result.failure.message == "no result after timeout_s=4; the process was killed"
    assert result.failure.stderr_tail == "still going\n"
    assert pid_file.exists(), "the child did not reach its grandchild within timeout_s=4"
    grandchild = int(pid_file.read_text())
    outlived = not _gone(grandchild)
    if outlived:
        os.kill(grandchild, signal.SIGKILL)
    assert not outlived, f"grandchild {grandchild} outlived the timeout"


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for init to reap it counts as gone)."""
    import time

    for _ in range(50):
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_one_failure_does_not_stop_the_scenarios_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a fake worker that crashes on "broken" and writes a real skipped result otherwise
    # (the real worker's failures are covered in-process; this is about the runner)
    import adrbench.engine.runner as runner

    done = ScenarioResult.of(
        Scenario(name="fine"), skip=Skip(reason="test", message="written by the fake worker")
    )
    prepared = tmp_path / "fine.json"
    prepared.write_text(json.dumps(to_data(done)), encoding="utf-8")
    worker = _fake_worker(
        "import json, shutil, sys\n"
        "name = json.load(open(sys.argv[1]))['name']\n"
        "if name == 'broken':\n"
        "    sys.stderr.write('ValueError: no such loss\\n'); sys.exit(1)\n"
        f"shutil.copy({str(prepared)!r}, sys.argv[2])\n"
    )
    real = runner.run_isolated

    def fake_isolated(scenario: Scenario, **kwargs: Any) -> ScenarioResult:
        return real(scenario, worker=worker, **kwargs)

    monkeypatch.setattr(runner, "run_isolated", fake_isolated)
    # WHEN the broken scenario runs first
    results = runner.run_scenarios([Scenario(name="broken"), Scenario(name="fine")])
    # THEN it is recorded failed with its stderr, and the next one still ran
    assert [r.status for r in results] == [Status.FAILED, Status.SKIPPED]
    assert results[0].failure is not None
    assert results[0].failure.stderr_tail == "ValueError: no such loss\n"
    assert results[1] == done


def test_a_bad_loss_is_a_failure_that_names_the_fix(tiny_model: Path, tiny_stsb: Path) -> None:
    broken = tiny(tiny_model, name="broken", loss="NoSuchLoss")
    result = run_scenario(broken, data_dir=tiny_stsb, progress=lambda event: None)
    assert result.status is Status.FAILED
    assert result.failure is not None
    assert result.failure.message == (
        "loss='NoSuchLoss' is not a sentence-transformers loss; did you mean 'CoSENTLoss'?"
    )


def _can_reset_peak_rss() -> bool:
    # The worker resets VmHWM by writing "5" to /proc/self/clear_refs; some kernels and
    # containers lack the file or refuse the write, and then no train-window peak exists.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@pytest.mark.slow  # three fresh training processes: ~15 s of CPU, run by .ci/run (-m "not gpu")
@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _can_reset_peak_rss(),
    reason="the train-window peak RSS needs a writable /proc/self/clear_refs (Linux)",
)
def test_peak_memory_is_per_scenario(tiny_model: Path, tiny_stsb: Path) -> None:
    # GIVEN three isolated runs: plain, holding a 500 MB buffer, then plain again
    base = tiny(tiny_model, evaluate_before=False, eval_pairs=8)
    runs = run_scenarios(
        [base, dataclasses.replace(base, name="ballast", ballast_mb=500), base],
        data_dir=tiny_stsb,
    )
    increase = []
    for r in runs:
        assert r.metrics is not None, r.failure
        memory = r.metrics.memory
        assert memory.train_peak_rss_bytes is not None
        increase.append(memory.train_peak_rss_bytes - memory.rss_before_train_bytes)
    # THEN the buffer shows as +500 MB within 2%, and the run after it does not inherit it.
    # 2% = 10 MB: measured here over 4 pairs of fresh processes, the train-window increase of a
    # plain run was 29-35 MB (sd 2.4 MB) and of a ballast run 500 MB + 32-37 MB (sd 2.5 MB), so a
    # difference of two runs has sd ~3.4 MB and 10 MB is ~3 sd.
    assert increase[1] - increase[0] == pytest.approx(500e6, rel=0.02)
    assert increase[2] - increase[0] == pytest.approx(0, abs=0.02 * 500e6)


def test_ctrl_c_keeps_finished_scenarios_and_marks_the_rest_canceled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import adrbench.engine.runner as runner

    calls: list[str] = []

    def fake_isolated(scenario: Scenario, **kwargs: object) -> object:
        calls.append(scenario.name)
        if scenario.name == "second":
            raise KeyboardInterrupt
        return run_isolated(scenario, worker=_fake_worker("import sys; sys.exit(0)"))

    monkeypatch.setattr(runner, "run_isolated", fake_isolated)
    names = ("first", "second", "third")
    results = runner.run_scenarios([Scenario(name=n) for n in names])
    assert [r.name for r in results] == list(names)
    assert calls == ["first", "second"]
    # the finished one keeps its outcome; the interrupted and the never-started are canceled,
    # not failed (an interrupted run says nothing about them)
    assert [r.status for r in results] == [Status.FAILED, Status.CANCELED, Status.CANCELED]
    assert results[0].failure is not None and results[0].failure.kind is FailureKind.CRASH
    for canceled in results[1:]:
        assert canceled.skip is not None and canceled.failure is None
        assert canceled.skip.message == "interrupted (Ctrl-C) before this scenario finished"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (MemoryError(), FailureKind.OUT_OF_MEMORY),
        ("torch-oom", FailureKind.OUT_OF_MEMORY),
        (RuntimeError("shape mismatch"), FailureKind.EXCEPTION),
    ],
)
def test_running_out_of_memory_in_process_is_recorded_as_out_of_memory(
    error: BaseException | str,
    kind: FailureKind,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model: Path,
    tiny_stsb: Path,
) -> None:
    import torch

    raised = torch.OutOfMemoryError("CUDA out of memory") if error == "torch-oom" else error
    assert isinstance(raised, BaseException)

    def build(scenario: Scenario, device: str) -> Any:
        raise raised

    # GIVEN a method whose build runs out of memory (or fails for another reason)
    monkeypatch.setattr(devices, "probe_devices", lambda: NO_CUDA)
    monkeypatch.setitem(
        methods.METHODS, "full", dataclasses.replace(methods.METHODS["full"], build=build)
    )
    # WHEN the scenario runs
    result = run_scenario(tiny(tiny_model), data_dir=tiny_stsb, progress=lambda e: None)
    # THEN the failure kind says out_of_memory only for the two out-of-memory errors
    assert result.failure is not None
    assert (result.failure.kind, result.failure.type) == (kind, type(raised).__name__)


@pytest.mark.parametrize(
    "dtype",
    [
        "bfloat16",
        # same code path with another autocast dtype; ~5 s more, so with the slow tests
        pytest.param("float16", marks=pytest.mark.slow),
    ],
)
def test_autocast_with_length_grouped_batches_trains_a_real_step(
    dtype: str, tiny_model: Path, tiny_stsb: Path
) -> None:
    # GIVEN the tiny model under autocast with batches grouped by length
    scenario = tiny(
        tiny_model,
        dtype=dtype,
        batching="length_grouped",
        evaluate_before=False,
        eval_pairs=8,
        max_steps=4,
        timing_warmup_steps=1,
    )
    # WHEN it trains in-process
    result = run_scenario(scenario, data_dir=tiny_stsb, progress=lambda e: None)
    # THEN it is ok with a finite loss over three timed steps
    assert result.status is Status.OK, result.failure
    assert result.metrics is not None and math.isfinite(result.metrics.final_loss)
    t = result.metrics.throughput
    assert len(t.step_times_s) == 3
    assert all(
        0 < real <= padded
        for real, padded in zip(t.step_real_tokens, t.step_padded_tokens, strict=True)
    )


def test_length_grouped_batches_pad_less_and_cover_every_pair_once_per_epoch() -> None:
    from adrbench.engine.train import plan_batches

    # GIVEN 400 pairs of random lengths, planned for one epoch both ways
    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(400)]
    plans = {
        batching: plan_batches(
            400, Scenario(name="x", batching=batching, batch_size=16, epochs=1.0), lengths
        )
        for batching in ("shuffled", "length_grouped")
    }

    def padded(batches: list[list[int]]) -> int:
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    # THEN both cover every pair exactly once, and grouping pads far fewer tokens
    for batches in plans.values():
        assert sorted(i for b in batches for i in b) == list(range(400))
    assert padded(plans["length_grouped"]) < 0.7 * padded(plans["shuffled"])


@pytest.mark.slow  # five real worker processes on the tiny model (~16 s here); CI runs it
def test_repetitions_run_one_process_each_with_their_seeds_and_share_zero_shot_scores(
    tiny_model: Path, tiny_stsb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adrbench.engine.runner as runner

    # GIVEN a scenario with two repetitions and a run_isolated that records what it is handed
    handed: list[tuple[int, bool]] = []
    real = runner.run_isolated

    def recording(scenario: Scenario, **kwargs: Any) -> ScenarioResult:
        handed.append((scenario.seed, kwargs.get("before") is not None))
        return real(scenario, **kwargs)

    monkeypatch.setattr(runner, "run_isolated", recording)
    scenario = tiny(tiny_model, repeats=2, eval_pairs=8)
    # WHEN run
    (result,) = runner.run_scenarios([scenario], data_dir=tiny_stsb)
    # THEN each seed ran in its own process, the second reusing the first one's zero-shot scores
    assert handed == [(42, False), (43, True)]
    assert result.status is Status.OK, result.failure
    assert [r.scenario.seed for r in result.samples()] == [42, 43]
    assert [r.fingerprint for r in result.samples()] == [
        scenario.repetition(42).fingerprint(),
        scenario.repetition(43).fingerprint(),
    ]
    first, second = (r.metrics for r in result.samples())
    assert first is not None and second is not None
    assert first.before == second.before
    # AND the aggregate summarises both repetitions
    assert result.aggregate["samples_per_s"].n == 2


def test_a_worker_handed_zero_shot_scores_reports_them_instead_of_evaluating(
    tiny_model: Path, tiny_stsb: Path
) -> None:
    made_up = {"dev": Scores(0.123, 0.456, 8), "test": Scores(0.321, 0.654, 8)}
    scenario = tiny(tiny_model, eval_pairs=8, max_steps=3)
    result = run_isolated(scenario, data_dir=tiny_stsb, before=made_up)
    assert result.metrics is not None, result.failure
    assert result.metrics.before == made_up


def test_a_skipped_scenario_is_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    import adrbench.engine.runner as runner

    # GIVEN a repeated scenario whose first repetition skips (e.g. QLoRA without CUDA)
    calls: list[int] = []

    def skipping(scenario: Scenario, **kwargs: object) -> ScenarioResult:
        calls.append(scenario.seed)
        return ScenarioResult.of(scenario, skip=Skip("cuda_unavailable", "no CUDA here"))

    monkeypatch.setattr(runner, "run_isolated", skipping)
    # WHEN run THEN only one process is started and the scenario is recorded skipped, once
    (result,) = runner.run_scenarios([Scenario(name="qlora", method="qlora", repeats=3)])
    assert calls == [42]
    assert result.status is Status.SKIPPED and result.repetitions == ()


def test_a_failed_repetition_fails_the_scenario_but_keeps_its_first_fingerprint() -> None:
    from adrbench.engine.runner import combine_repetitions

    # GIVEN two repetitions, the second killed from outside
    declared = Scenario(name="lora", method="lora", repeats=2)
    first = ScenarioResult.of(declared.repetition(42), skip=Skip("x", "any outcome"))
    killed = ScenarioResult.of(
        declared.repetition(43),
        failure=Failure(FailureKind.CRASH, "Crash", "ended with signal SIGTERM", ""),
    )
    # WHEN combined THEN the failure shows, under the first repetition's fingerprint (the gate's
    # key), and both repetitions are kept
    combined = combine_repetitions(declared, [first, killed])
    assert combined.status is Status.FAILED and combined.failure == killed.failure
    assert combined.fingerprint == declared.repetition(42).fingerprint()
    assert combined.samples() == (first, killed)
