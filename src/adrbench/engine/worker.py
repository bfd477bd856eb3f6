"""One scenario, measured in the process that runs it.

``run_scenario`` never raises: it returns ``ok`` with metrics, ``skipped`` with a reason code, or
``failed`` with the exception. The runner starts this module in a fresh process per scenario
(``python -m adrbench.engine.worker SCENARIO.json RESULT.json``) so every peak is the scenario's
own; progress goes to stdout as ``@adrbench {json}`` lines.
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from adrbench.engine import device as devices
from adrbench.engine import measure
from adrbench.engine.compiled import compile_model, compile_problem
from adrbench.engine.data import load_stsb
from adrbench.engine.evaluate import evaluate_sts
from adrbench.engine.interrupt import die_with_parent
from adrbench.engine.methods import get_method
from adrbench.engine.scenario import Scenario
from adrbench.engine.serve import measure_serving
from adrbench.engine.train import train
from adrbench.errors import ScenarioError
from adrbench.results.record import (
    Compute,
    Failure,
    FailureKind,
    Metrics,
    Phases,
    ScenarioResult,
    Scores,
    Skip,
    Throughput,
    from_data,
    to_data,
)

__all__ = ["PROGRESS_PREFIX", "main", "resolve_loss", "run_scenario"]

PROGRESS_PREFIX = "@adrbench "
Progress = Callable[[dict[str, Any]], None]


def _print_progress(event: dict[str, Any]) -> None:
    print(PROGRESS_PREFIX + json.dumps(event), flush=True)


def resolve_loss(name: str, model: Any) -> torch.nn.Module:
    """A sentence-transformers loss by class name, built on ``model`` with its defaults."""
    from sentence_transformers.sentence_transformer import losses

    available = sorted(n for n in dir(losses) if n.endswith("Loss"))
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ScenarioError(f"loss={name!r} is not a sentence-transformers loss{hint}")
    loss: torch.nn.Module = getattr(losses, name)(model)
    return loss


def _skipped(scenario: Scenario, skip: Skip) -> ScenarioResult:
    return ScenarioResult.of(scenario, skip=skip)


def _failed(scenario: Scenario, error: BaseException) -> ScenarioResult:
    oom = isinstance(error, MemoryError | torch.OutOfMemoryError)
    tail = "".join(traceback.format_exception(error))[-4000:]
    return ScenarioResult.of(
        scenario,
        failure=Failure(
            kind=FailureKind.OUT_OF_MEMORY if oom else FailureKind.EXCEPTION,
            type=type(error).__name__,
            message=str(error) or type(error).__name__,
            stderr_tail=tail,
        ),
    )


def run_scenario(
    scenario: Scenario,
    *,
    data_dir: Path | None = None,
    progress: Progress = _print_progress,
    before: Mapping[str, Scores] | None = None,
) -> ScenarioResult:
    """Measure one scenario.

    Args:
        scenario: What to run.
        data_dir: STS-B directory (default: see :func:`adrbench.engine.data.load_stsb`).
        progress: Receives progress events.
        before: Zero-shot scores already measured in this run for the same untrained model and
            evaluation data (see :func:`adrbench.engine.runner.zero_shot_key`); they are reused
            instead of evaluating again, so ``evaluate_s`` is then the after-training evaluation
            alone.
    """
    try:
        return _measure(scenario, data_dir, progress, before)
    except Exception as error:
        return _failed(scenario, error)


def _measure(
    scenario: Scenario,
    data_dir: Path | None,
    progress: Progress,
    known_before: Mapping[str, Scores] | None = None,
) -> ScenarioResult:
    probe = devices.probe_devices()
    method = get_method(scenario.method)
    skip = method.requirement(scenario, probe)
    if skip is not None:
        return _skipped(scenario, skip)
    device = devices.resolve_device(scenario.device, probe)
    if device is None:
        return _skipped(
            scenario,
            Skip(
                reason="device_unavailable",
                message=f"scenario asks for device {scenario.device!r}; this machine has "
                f"{probe.describe()}",
            ),
        )
    random.seed(scenario.seed)
    torch.manual_seed(scenario.seed)
    if scenario.threads is not None:
        torch.set_num_threads(scenario.threads)
    if scenario.serve is not None:
        return _serve(scenario, device, data_dir, progress)
    if scenario.compile:
        problem = compile_problem(device)
        if problem is not None:
            return _skipped(scenario, problem)

    progress({"phase": "load"})
    start = time.perf_counter()
    data = load_stsb(data_dir)
    train_split = data.train.head(scenario.train_pairs)
    eval_splits = {s.name: s.sample(scenario.eval_pairs) for s in (data.dev, data.test)}
    model = method.build(scenario, device)
    if scenario.max_seq_length is not None:
        model.max_seq_length = scenario.max_seq_length
    loss_fn = resolve_loss(scenario.loss, model)
    load_s = time.perf_counter() - start

    def evaluate_all() -> dict[str, Scores]:
        return {
            name: evaluate_sts(model, split, batch_size=scenario.eval_batch_size)
            for name, split in eval_splits.items()
        }

    start = time.perf_counter()
    before: Mapping[str, Scores] | None = None
    if scenario.evaluate_before:
        before = dict(known_before) if known_before is not None else evaluate_all()
    evaluate_s = time.perf_counter() - start

    total_parameters, trainable_parameters = measure.count_parameters(model)
    n_matmul, n_trainable_matmul = measure.matmul_parameters(model)
    if scenario.compile:  # after the zero-shot evaluation: compile the training graph only
        compile_model(model)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    peak_flops = measure.matmul_peak_flops_per_s(device, dtype[scenario.dtype])

    rss_before = measure.rss_bytes()
    ballast = torch.ones(scenario.ballast_mb * 10**6, dtype=torch.uint8)  # touched: counts in RSS
    # Resetting the high-water mark also resets getrusage's, so keep the lifetime peak so far.
    lifetime_peak = measure.process_peak_rss_bytes()
    window = measure.reset_peak_rss()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    def on_step(step: int, total: int, seconds: float) -> None:
        progress(
            {
                "phase": "train",
                "step": step,
                "total": total,
                "step_s": seconds,
                "batch": scenario.batch_size,
            }
        )

    progress({"phase": "train", "step": 0, "total": 0, "step_s": 0.0, "batch": scenario.batch_size})
    start = time.perf_counter()
    log = train(model, loss_fn, train_split, scenario, device, on_step)
    train_s = time.perf_counter() - start
    train_peak = measure.window_peak_rss_bytes() if window else None
    memory = measure.device_memory(
        device,
        rss_before_train_bytes=rss_before,
        peak_rss_bytes=max(lifetime_peak, measure.process_peak_rss_bytes(), train_peak or 0),
        train_peak_rss_bytes=train_peak,
        mps_sampled_max_allocated_bytes=log.mps_max_allocated_bytes,
        mps_driver_max_allocated_bytes=log.mps_driver_max_allocated_bytes,
        train_peak_anon_rss_bytes=log.peak_anon_rss_bytes,
    )
    del ballast
    # Timed again now that training is over, keeping the better: one low reading cannot halve the
    # peak (run 92fd: 3 of 24 two-thread processes read 102-173 GFLOP/s before training beside
    # 203-208 while their training ran at the others' speed, so their fraction of peak read up to
    # 1.8x the others'). Time-sharing a core does not explain it: the best of 0.5 s reads 207
    # with a busy loop on the other core.
    peak_flops = max(peak_flops, measure.matmul_peak_flops_per_s(device, dtype[scenario.dtype]))

    progress({"phase": "evaluate"})
    start = time.perf_counter()
    after = evaluate_all()
    evaluate_s += time.perf_counter() - start

    timed = sum(log.step_times_s)
    flops = sum(
        measure.train_flops(n_matmul, n_trainable_matmul, tokens)
        for tokens in log.step_padded_tokens
    )
    return ScenarioResult.of(
        scenario,
        metrics=Metrics(
            device=device,
            model_id=scenario.model,
            total_parameters=total_parameters,
            trainable_parameters=trainable_parameters,
            steps=log.steps,
            final_loss=log.final_loss,
            throughput=Throughput(
                samples_per_s=sum(log.step_samples) / timed,
                real_tokens_per_s=sum(log.step_real_tokens) / timed,
                padded_tokens_per_s=sum(log.step_padded_tokens) / timed,
                warmup_steps=scenario.timing_warmup_steps,
                step_times_s=log.step_times_s,
                step_samples=log.step_samples,
                step_real_tokens=log.step_real_tokens,
                step_padded_tokens=log.step_padded_tokens,
            ),
            memory=memory,
            compute=Compute(
                train_flops_per_s=flops / timed,
                matmul_peak_flops_per_s=peak_flops,
                fraction_of_peak=(flops / timed) / peak_flops,
                formula=measure.TRAIN_FLOPS_FORMULA,
            ),
            phases=Phases(load_s=load_s, train_s=train_s, evaluate_s=evaluate_s),
            before=before,
            after=after,
        ),
    )


def _serve(
    scenario: Scenario, device: str, data_dir: Path | None, progress: Progress
) -> ScenarioResult:
    """A serving scenario: requests are the first ``request_batch`` STS-B test sentences."""
    assert scenario.serve is not None
    test = load_stsb(data_dir).test
    sentences = list(test.sentence1 + test.sentence2)[: scenario.serve.request_batch]
    serving = measure_serving(scenario, device, sentences, lambda phase: progress({"phase": phase}))
    return ScenarioResult.of(scenario, serving=serving)


def main(argv: list[str] | None = None) -> int:
    die_with_parent()  # a worker never outlives the runner that started it
    parser = argparse.ArgumentParser(prog="python -m adrbench.engine.worker")
    parser.add_argument("scenario", type=Path, help="scenario JSON (Scenario.to_mapping)")
    parser.add_argument("result", type=Path, help="where to write the ScenarioResult JSON")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--before", type=Path, default=None, help="zero-shot scores JSON to reuse (split -> Scores)"
    )
    args = parser.parse_args(argv)
    scenario = from_data(Scenario, json.loads(args.scenario.read_text()), source=str(args.scenario))
    before = None
    if args.before is not None:
        before = from_data(
            dict[str, Scores],
            json.loads(args.before.read_text()),
            source=str(args.before),
        )
    result = run_scenario(scenario, data_dir=args.data_dir, before=before)
    if result.failure is not None:
        print(result.failure.stderr_tail, file=sys.stderr)
    args.result.write_text(json.dumps(to_data(result)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
