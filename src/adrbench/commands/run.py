"""``adrbench run SUITE.toml``: every scenario in its own process; one results file per run."""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import signal
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from tabulate import tabulate

from adrbench.engine.data import load_stsb
from adrbench.engine.environment import capture_git, measuring_code_sha256, repository_root
from adrbench.engine.interrupt import Signals, exit_status, interruptible
from adrbench.engine.models import model_info
from adrbench.engine.progress import ProgressDisplay
from adrbench.engine.suite import load_suite, parse_override
from adrbench.machine import capture_and_remember
from adrbench.paths import portable_name
from adrbench.results.metrics import flatten_serving
from adrbench.results.record import (
    SCHEMA_VERSION,
    GitInfo,
    Interruption,
    MetricSummary,
    Provenance,
    RunRecord,
    ScenarioResult,
    Status,
)
from adrbench.results.store import write_run
from adrbench.units import format_bytes

_RESULTS_HELP = "results directory (default: results/ in the project root)"

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", type=Path, help="suite file, e.g. bench/finetune_sts.toml")
    parser.add_argument("--profile", default="quick", help="profile in the suite (quick | full)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this scenario (repeatable)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario field for every scenario (repeatable); dotted keys set one "
        "field of a table: --set lora.r=4 --set lora.target_modules=[query,value]",
    )
    parser.add_argument("--results-dir", type=Path, default=None, help=_RESULTS_HELP)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="STS-B folder (else $ADRBENCH_STSB_DIR, else the HF hub)",
    )
    parser.add_argument(
        "--allow-cpu-qlora",
        action="store_true",
        help="run qlora scenarios without CUDA via bitsandbytes' CPU backend",
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _summary(results: tuple[ScenarioResult, ...]) -> str:
    """One row per scenario; repeated ones show mean ± 95% CI half-width (n) of the repetitions."""
    rows = []
    for r in results:
        if r.metrics is not None:
            m = r.metrics
            before = m.before["test"].spearman if m.before and "test" in m.before else None

            def shown(
                metric: str,
                value: float,
                fmt: Callable[[float], str],
                aggregate: Mapping[str, MetricSummary] = r.aggregate,
            ) -> str:
                s = aggregate.get(metric)
                if s is None:
                    return fmt(value)
                return f"{fmt(s.mean)} ± {fmt((s.ci_high - s.ci_low) / 2)} (n={s.n})"

            rows.append(
                [
                    r.name,
                    r.status.value,
                    shown("samples_per_s", m.throughput.samples_per_s, lambda v: f"{v:.1f}"),
                    shown("peak_memory_bytes", m.memory.peak_memory_bytes, format_bytes)
                    + f" ({m.memory.peak_memory_source})",
                    (f"{before:.3f} -> " if before is not None else "")
                    + shown("test_spearman", m.after["test"].spearman, lambda v: f"{v:.3f}"),
                    "",
                ]
            )
        elif r.serving is not None:
            flat = flatten_serving(r.serving)
            rows.append(
                [
                    r.name,
                    r.status.value,
                    f"{flat['encode_sentences_per_s']:.0f} sentences/s",
                    format_bytes(r.serving.resident_bytes) + f" ({r.serving.memory_source})",
                    "",
                    f"serving {r.serving.adapters} variant(s)",
                ]
            )
        else:
            why = (
                f"{r.skip.reason}: {r.skip.message}"
                if r.skip
                else f"{r.failure.kind.value}: {r.failure.message}"
                if r.failure
                else ""
            )
            rows.append([r.name, r.status.value, "", "", "", why])
    headers = ["scenario", "status", "samples/s", "peak memory", "test Spearman", "why"]
    return tabulate(rows, headers=headers)


def _recorded_overrides(items: list[str], root: Path) -> dict[str, str]:
    """``--set`` items as text (to re-apply them when judging staleness), paths made portable."""
    pairs = (item.partition("=") for item in items)
    return {key.strip(): portable_name(value.strip(), root) for key, _sep, value in pairs}


def _portable(result: ScenarioResult, root: Path) -> ScenarioResult:
    """The result as recorded: a local model named without this machine's path (the fingerprint
    already ignores where it lies, so it does not change)."""
    model = portable_name(result.scenario.model, root)
    if model == result.scenario.model:
        return result
    scenario = dataclasses.replace(result.scenario, model=model)
    metrics = result.metrics and dataclasses.replace(result.metrics, model_id=model)
    serving = result.serving and dataclasses.replace(result.serving, model_id=model)
    return dataclasses.replace(
        result,
        scenario=scenario,
        fingerprint=scenario.fingerprint(),
        metrics=metrics,
        serving=serving,
    )


def _warn_if_code_changed(started: GitInfo, code_sha256: str, where: Path) -> None:
    """Say so when the commit or the measuring code changed while the scenarios ran."""
    now, code_now = capture_git(where), measuring_code_sha256()
    changes = []
    if started.commit != now.commit:
        changes.append(f"commit {(started.commit or '?')[:12]} -> {(now.commit or '?')[:12]}")
    if code_now != code_sha256:
        changes.append(f"measuring code {code_sha256[:12]} -> {code_now[:12]}")
    if changes:
        print(
            f"warning: {', '.join(changes)} while this run went on; it records the code it "
            "started with (later scenarios may have imported the newer code)",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    """Run the suite and write its results file.

    A signal (Ctrl-C, SIGTERM, SIGHUP) before any scenario starts ends the command with nothing
    written (exit 128 + the signal); during the scenarios, see
    :func:`adrbench.engine.runner.run_scenarios`; a second one exits at once.
    """
    with interruptible() as signals:
        return _run(args, signals)


def _run(args: argparse.Namespace, signals: Signals) -> int:
    suite = load_suite(args.suite)
    overrides = [parse_override(item) for item in args.set]
    scenarios = suite.scenarios(args.profile, only=args.only, overrides=overrides)
    if args.allow_cpu_qlora:
        scenarios = tuple(
            dataclasses.replace(s, allow_cpu_qlora=True) if s.method == "qlora" else s
            for s in scenarios
        )
    suite_dir = args.suite.resolve().parent
    root = repository_root(suite_dir)
    data = load_stsb(args.data_dir, root=root)  # fail before any scenario starts if no data
    data_dir = data.directory
    started = _now()
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{suite.name}-{args.profile}-{secrets.token_hex(2)}"
    print(f"adrbench run {run_id}: {len(scenarios)} scenarios from {args.suite}", flush=True)
    # The code the scenarios run is the code at the start: a commit or edit made while a long run
    # goes on must not be recorded as what measured it.
    git, code_sha256 = capture_git(suite_dir), measuring_code_sha256()
    # Imported here, not at the top: the runner brings torch (~2 s, 340 MB), which a suite or
    # data problem reported above never needs.
    from adrbench.engine.runner import run_scenarios

    results = run_scenarios(scenarios, data_dir=data_dir, display=ProgressDisplay())
    _warn_if_code_changed(git, code_sha256, suite_dir)
    signals.defer = True  # what finished is written even if another signal comes now
    results = tuple(_portable(result, root) for result in results)
    canceled = any(rep.status is Status.CANCELED for r in results for rep in r.samples())
    interrupted = None
    if signals.first is not None or canceled:
        interrupted = Interruption(signal.Signals(signals.first or signal.SIGINT).name)
    record = RunRecord(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        suite=suite.name,
        profile=args.profile,
        started_at=started.isoformat().replace("+00:00", "Z"),
        finished_at=_now().isoformat().replace("+00:00", "Z"),
        git=git,
        environment=capture_and_remember(),
        model=model_info(scenarios[0].model, root) if scenarios else None,
        dataset=data.info,
        scenarios=results,
        provenance=Provenance(
            suite_file=portable_name(str(args.suite.resolve()), root),
            overrides=_recorded_overrides(args.set, root),
            scenario_fingerprints={r.name: r.fingerprint for r in results},
            measuring_code_sha256=code_sha256,
        ),
        interrupted=interrupted,
    )
    path = write_run(record, args.results_dir)
    print(_summary(results))
    print(f"results: {path}")
    if interrupted is not None:
        print(
            f"interrupted ({interrupted.signal}): the run is kept as interrupted; check, report "
            "and gate pass it over unless given --include-interrupted",
            file=sys.stderr,
        )
        # What a shell reports for that signal (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP); the partial
        # run is written above.
        return exit_status(signals.first or signal.SIGINT)
    return 1 if any(r.status is Status.FAILED for r in results) else 0
