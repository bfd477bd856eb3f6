"""Verdicts: triggers fire or not, claims hold or fail, premises hold or go stale — or unknown."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from adrbench.decisions import facts as facts_module
from adrbench.decisions.adr import Adr, AdrError, load_adrs, parse_adr
from adrbench.decisions.facts import Facts, build_facts
from adrbench.decisions.probes import ProbeResult
from adrbench.decisions.verdicts import (
    AdrVerdicts,
    Judgement,
    Outcome,
    judge,
    judge_adr,
    judge_all,
)
from adrbench.results import store
from adrbench.results.record import run_from_json
from factories import (
    LORA_TRAINABLE,
    MINILM_PARAMETERS,
    make_adr_verdicts,
    make_environment,
    make_finetune_sts_run,
    make_run,
    make_verdict,
)

REPO_ADRS = Path(__file__).parents[1] / "adr"


@pytest.fixture(scope="module")
def adrs() -> dict[int, Adr]:
    return {adr.number: adr for adr in load_adrs(REPO_ADRS)}


def outcomes(verdicts: AdrVerdicts) -> dict[str, str]:
    return {v.id: v.outcome.value for v in verdicts.verdicts}


def probe_facts(monkeypatch: pytest.MonkeyPatch, on_cpu: bool | None, **what_if: str) -> Facts:
    """Facts of the CPU run with the NF4 probe's finding fixed (None: could not run)."""
    detail = "bitsandbytes 0.50.2: quantized on the CPU" if on_cpu else "raised on the CPU"

    def run_probes(timeout_s: float = 180.0) -> dict[str, ProbeResult]:
        return {"bnb_nf4_on_cpu": ProbeResult("bnb_nf4_on_cpu", on_cpu, detail)}

    monkeypatch.setattr("adrbench.decisions.facts.run_probes", run_probes)
    return build_facts(make_finetune_sts_run(), what_if=what_if, probes=True)


# --- ADR-0002 on this machine ----------------------------------------------------------------


def test_on_a_cpu_run_neither_the_7b_nor_the_cuda_trigger_fires(adrs: dict[int, Adr]) -> None:
    # GIVEN the CPU run of 22.7M parameters WHEN ADR-0002 is judged THEN no trigger fires
    verdicts = judge_adr(adrs[2], build_facts(make_finetune_sts_run(), probes=False))
    assert outcomes(verdicts) == {
        "qlora-skipped": "holds",
        "lora-fits-8gb": "holds",
        "base-model-small": "holds",
        "qlora-saves-little": "holds",
        "adapters-share-base": "unknown",  # no serve_adapters run here
        "lora-exceeds-laptop": "not fired",
        "model-7b": "not fired",
        "cuda": "not fired",
        "multi-adapter-serving": "unknown",  # no declared facts given
        "bnb-needs-cuda": "unknown",
    }
    model_7b = next(v for v in verdicts.verdicts if v.id == "model-7b")
    assert dict(model_7b.values) == {"model.parameters": MINILM_PARAMETERS}
    assert model_7b.reason is None


def test_what_if_7b_parameters_fires_the_trigger(adrs: dict[int, Adr]) -> None:
    # GIVEN --what-if model.parameters=7B WHEN ADR-0002 is judged THEN model-7b fires
    facts = build_facts(make_finetune_sts_run(), what_if={"model.parameters": "7B"}, probes=False)
    verdicts = judge_adr(adrs[2], facts)
    fired = next(v for v in verdicts.verdicts if v.id == "model-7b")
    assert fired.outcome is Outcome.FIRED
    assert dict(fired.values) == {"model.parameters": 7e9}
    assert fired.reason == "what-if: model.parameters"
    assert verdicts.needs_attention


def test_a_cuda_machine_fires_the_cuda_trigger(adrs: dict[int, Adr]) -> None:
    # GIVEN a run recorded where CUDA is available WHEN judged THEN the cuda trigger fires
    env = make_environment("cuda-box", cuda_available=True, device_kind="cuda")
    run = make_finetune_sts_run(environment=env)
    verdicts = judge_adr(adrs[2], build_facts(run, probes=False))
    assert outcomes(verdicts)["cuda"] == "fired"


def test_the_bnb_premise_is_stale_when_the_probe_quantizes_on_cpu(
    adrs: dict[int, Adr], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the NF4 probe succeeded on the CPU WHEN judged THEN "needs CUDA" is stale, with why
    verdicts = judge_adr(adrs[2], probe_facts(monkeypatch, True))
    premise = verdicts.of_kind(verdicts.verdicts[-1].kind)[0]
    assert premise.outcome is Outcome.STALE
    assert dict(premise.values) == {"probes.bnb_nf4_on_cpu": True}
    assert premise.reason == "bitsandbytes 0.50.2: quantized on the CPU"


def test_the_bnb_premise_holds_when_the_probe_cannot_quantize_on_cpu(
    adrs: dict[int, Adr], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the probe raised on the CPU WHEN judged THEN the premise still holds
    verdicts = judge_adr(adrs[2], probe_facts(monkeypatch, False))
    assert outcomes(verdicts)["bnb-needs-cuda"] == "holds"


def test_the_bnb_premise_is_unknown_when_the_probe_could_not_run(
    adrs: dict[int, Adr], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a probe that could not run WHEN judged THEN the premise is unknown, never holds
    verdicts = judge_adr(adrs[2], probe_facts(monkeypatch, None))
    premise = next(v for v in verdicts.verdicts if v.id == "bnb-needs-cuda")
    assert premise.outcome is Outcome.UNKNOWN
    assert premise.reason == "probes.bnb_nf4_on_cpu: raised on the CPU"


# --- ADR-0001: measurements judged honestly --------------------------------------------------


def test_lora_slower_than_full_fails_the_speed_claim(adrs: dict[int, Adr]) -> None:
    # GIVEN LoRA steps slower than full ones (as on some CPUs), and this CPU's measured memory
    # and accuracy, WHEN judged THEN lora-faster fails, and lora-less-memory fails as measured
    run = make_finetune_sts_run(lora_step_time_s=0.8, full_step_time_s=0.7)
    facts = build_facts(run, probes=False)
    verdicts = judge_adr(adrs[1], facts)
    assert outcomes(verdicts) == {
        "fewer-trainable-params": "holds",
        "lora-faster": "fails",
        "lora-less-memory": "fails",
        "lora-quality": "holds",
        "full-ft-outgrows-laptop": "not fired",
        "lora-quality-gap": "not fired",
    }
    ratio = verdicts.verdicts[0]
    assert ratio.computed == {
        "results.full.trainable_parameters / results.lora.trainable_parameters": pytest.approx(
            22_713_216 / LORA_TRAINABLE
        )
    }
    speed = verdicts.verdicts[1]
    assert {name: e.mean for name, e in speed.values.items()} == {  # type: ignore[attr-defined]
        "results.lora.samples_per_s": pytest.approx(20.0, rel=1e-3),
        "results.full.samples_per_s": pytest.approx(16 / 0.7, rel=1e-3),
    }


def test_lora_faster_than_full_holds_the_speed_claim(adrs: dict[int, Adr]) -> None:
    # GIVEN LoRA steps faster WHEN judged THEN the speed claim holds
    facts = build_facts(make_finetune_sts_run(lora_step_time_s=0.5), probes=False)
    assert outcomes(judge_adr(adrs[1], facts))["lora-faster"] == "holds"


def test_a_large_quality_gap_fails_the_claim_and_fires_the_trigger(adrs: dict[int, Adr]) -> None:
    # GIVEN LoRA at 0.70 vs full at 0.85 WHEN judged THEN quality fails and the gap trigger fires
    facts = build_facts(make_finetune_sts_run(lora_test_spearman=0.70), probes=False)
    result = outcomes(judge_adr(adrs[1], facts))
    assert (result["lora-quality"], result["lora-quality-gap"]) == ("fails", "fired")


# --- unknown is never fine -------------------------------------------------------------------


def test_a_claim_on_a_skipped_scenario_is_unknown_with_the_skip_reason(tmp_path: Path) -> None:
    # GIVEN a claim about QLoRA memory and QLoRA skipped WHEN judged THEN unknown, with why
    path = tmp_path / "0009-q.md"
    path.write_text(
        "---\nclaims:\n  - id: q\n    text: QLoRA fits\n"
        "    holds_if: results.qlora.peak_rss_bytes < 4GiB\n---\n\n# Q\n",
        encoding="utf-8",
    )
    verdicts = judge_adr(parse_adr(path), build_facts(make_finetune_sts_run(), probes=False))
    (claim,) = verdicts.verdicts
    assert claim.outcome is Outcome.UNKNOWN
    assert dict(claim.values) == {"results.qlora.peak_rss_bytes": None}
    assert claim.reason == "results.qlora is skipped (cuda_unavailable)"
    assert not verdicts.needs_attention


def test_without_any_run_results_and_model_facts_are_unknown(
    adrs: dict[int, Adr], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN no run yet (env read from this machine, stubbed here) WHEN judged THEN unknowns
    monkeypatch.setattr(
        "adrbench.decisions.facts._live_env_values", lambda: {"env.cuda_available": False}
    )
    facts = build_facts(None, probes=False)
    verdicts = judge_adr(adrs[2], facts)
    assert outcomes(verdicts) == {
        "qlora-skipped": "unknown",
        "lora-fits-8gb": "unknown",
        "base-model-small": "unknown",
        "qlora-saves-little": "unknown",  # the estimates need model.parameters
        "adapters-share-base": "unknown",
        "lora-exceeds-laptop": "unknown",
        "model-7b": "unknown",
        "cuda": "not fired",
        "multi-adapter-serving": "unknown",
        "bnb-needs-cuda": "unknown",
    }
    assert verdicts.verdicts[0].reason == (
        "no results yet for this environment; run `adrbench run`"
    )


def test_only_fired_failed_and_stale_need_attention() -> None:
    # GIVEN every outcome WHEN asked whether it reopens a decision THEN unknown does not
    assert {o.value for o in Outcome if o.needs_attention} == {"fired", "fails", "stale"}


def test_a_plain_madr_adr_is_judged_as_having_no_evidence() -> None:
    # GIVEN an ADR without adrbench keys WHEN judged THEN it has no verdicts and no error
    adr = parse_adr(Path(__file__).parent / "data" / "adr" / "plain" / "0004-use-plain-madr.md")
    verdicts = judge_adr(adr, build_facts(make_finetune_sts_run(), probes=False))
    assert (verdicts.evidence, verdicts.verdicts, verdicts.needs_attention) == ((), (), False)


# --- expressions that cannot be judged -------------------------------------------------------


def _one_claim(tmp_path: Path, condition: str) -> Adr:
    path = tmp_path / "0005-x.md"
    path.write_text(
        f"---\nclaims:\n  - id: c\n    text: C\n    holds_if: {condition}\n---\n\n# X\n",
        encoding="utf-8",
    )
    return parse_adr(path)


def test_a_condition_that_is_a_number_is_an_error(tmp_path: Path) -> None:
    # GIVEN holds_if that computes a number WHEN judged THEN the ADR line says to write a condition
    adr = _one_claim(tmp_path, "model.parameters * 2")
    with pytest.raises(AdrError) as info:
        judge_adr(adr, build_facts(make_finetune_sts_run(), probes=False))
    assert str(info.value) == (
        "1 problem in ADRs\n"
        f"{adr.path}:5: claims[0].holds_if: evaluates to 45426432.0, not true or false; write a "
        "condition, e.g. 'model.parameters >= 7B'\n"
        "    model.parameters * 2\n"
        "    ^~~~~~~~~~~~~~~~~~~~"
    )


def test_a_type_mismatch_names_the_adr_line_and_column(tmp_path: Path) -> None:
    # GIVEN a string compared with a number WHEN judged THEN file, line and caret are given
    adr = _one_claim(tmp_path, "env.device > 1")
    with pytest.raises(AdrError) as info:
        judge_adr(adr, build_facts(make_finetune_sts_run(), probes=False))
    assert str(info.value) == (
        "1 problem in ADRs\n"
        f"{adr.path}:5: claims[0].holds_if: cannot compare 'cpu' > 1.0; both sides must be "
        "numbers, strings or booleans alike\n"
        "    env.device > 1\n"
        "    ^~~~~~~~~~~~~~"
    )


# --- judge_all: which run --------------------------------------------------------------------


def test_judge_all_uses_the_latest_run_of_this_environment(tmp_path: Path) -> None:
    # GIVEN an older run here and a newer run from a CUDA machine WHEN judged for this machine
    # THEN the run from this environment decides
    here = make_finetune_sts_run(run_id="20261128T100000Z-finetune_sts-quick-0001")
    cuda_env = make_environment("cuda-box", cuda_available=True, device_kind="cuda")
    other = make_finetune_sts_run(
        run_id="20261128T110000Z-finetune_sts-quick-0001", environment=cuda_env
    )
    store.write_run(here, tmp_path)
    store.write_run(other, tmp_path)
    judgement = judge(REPO_ADRS, tmp_path, probes=False, environment="cpu-2core-24g")
    assert judgement.run is not None
    assert judgement.run.run_id == "20261128T100000Z-finetune_sts-quick-0001"
    assert outcomes(judgement.verdicts[1])["cuda"] == "not fired"
    latest = judge_all(REPO_ADRS, tmp_path, run="latest", probes=False)
    assert outcomes(latest[1])["cuda"] == "fired"


def test_judge_all_with_no_run_for_this_environment_reports_unknown(tmp_path: Path) -> None:
    # GIVEN only a run from another machine WHEN judged here THEN results are unknown, not fine
    store.write_run(make_run(environment=make_environment("elsewhere")), tmp_path)
    judgement = judge(REPO_ADRS, tmp_path, probes=False, environment="cpu-2core-24g")
    assert judgement.run is None
    assert outcomes(judgement.verdicts[0])["lora-faster"] == "unknown"


def test_judge_all_judges_only_the_named_adrs(tmp_path: Path) -> None:
    # GIVEN one ADR named WHEN judged THEN only its verdicts come back
    store.write_run(make_finetune_sts_run(), tmp_path)
    only = [REPO_ADRS / "0003-cosine-similarity-loss.md"]
    verdicts = judge_all(REPO_ADRS, tmp_path, probes=False, only=only, environment="cpu-2core-24g")
    assert [v.number for v in verdicts] == [3]
    assert outcomes(verdicts[0]) == {
        "cosine-not-worse": "holds",
        "cosine-improves-zero-shot": "holds",
        "cosent-clearly-better": "not fired",
    }


def test_a_full_profile_run_stays_the_evidence_over_a_newer_quick_run(tmp_path: Path) -> None:
    # GIVEN a full-profile run and a newer quick run on this machine WHEN judged
    # THEN the full-profile run decides (the same run the reports show)
    full = make_finetune_sts_run(run_id="20261128T100000Z-finetune_sts-full-0001")
    quick = make_finetune_sts_run(run_id="20261128T110000Z-finetune_sts-quick-0001")
    store.write_run(replace(full, profile="full"), tmp_path)
    store.write_run(quick, tmp_path)
    judgement = judge(REPO_ADRS, tmp_path, probes=False, environment="cpu-2core-24g")
    assert judgement.run is not None
    assert judgement.run.run_id == "20261128T100000Z-finetune_sts-full-0001"


def test_lora_less_memory_on_this_cpu_is_inconclusive_once_and_fails_when_repeated() -> None:
    # GIVEN the repository's ADR-001 and a committed quick run of this CPU (one repetition), where
    # LoRA's peak memory (train peak RSS on a CPU: 1.68 GiB) is above full fine-tuning's (1.62 GiB)
    repo = Path(__file__).resolve().parents[1]
    path = repo / "results" / "runs" / "20261128T154211Z-finetune_sts-quick-0e34.json"
    run = run_from_json(path.read_text(encoding="utf-8"), source=path)
    adr = parse_adr(repo / "adr" / "0001-lora-vs-full-fine-tuning.md")
    # WHEN it is judged on that run
    verdicts = {v.id: v for v in judge_adr(adr, build_facts(run, probes=False)).verdicts}
    # THEN a 65 MB gap measured once is inside the RSS process noise (100 MB): inconclusive, with
    # the measured values and how many repetitions would resolve it
    less = verdicts["lora-less-memory"]
    assert less.outcome is Outcome.INCONCLUSIVE
    assert {name: _mean(value) for name, value in less.values.items()} == {
        "results.lora.peak_memory_bytes": 1_799_573_504,
        "results.full.peak_memory_bytes": 1_734_586_368,
    }
    assert less.resolve is not None and less.resolve > 3
    # AND the same numbers measured three times each (a spread of 10 MB) fail the claim
    repeated = make_finetune_sts_run(repeats=3)
    verdicts = {v.id: v for v in judge_adr(adr, build_facts(repeated, probes=False)).verdicts}
    assert verdicts["lora-less-memory"].outcome is Outcome.FAILS


def _mean(value: object) -> float:
    return float(getattr(value, "mean", value))  # type: ignore[arg-type]


def test_outcome_words_are_the_ones_reports_and_the_cli_print() -> None:
    assert [o.value for o in Outcome] == [
        "fired",
        "not fired",
        "holds",
        "fails",
        "stale",
        "inconclusive",
        "unknown",
    ]


def test_a_judgement_needs_attention_exactly_when_one_of_its_adrs_does() -> None:
    facts = build_facts(make_finetune_sts_run(), probes=False)
    fine = make_adr_verdicts()
    failing = make_adr_verdicts([make_verdict("claim", "x", "fails")])
    assert Judgement(None, facts, (fine,)).needs_attention is False
    assert Judgement(None, facts, (fine, failing)).needs_attention is True


def test_judging_runs_the_premise_probes_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a stored run and probes that only record that they ran
    store.write_run(make_finetune_sts_run(), tmp_path)
    calls: list[str] = []

    def probes() -> dict[str, ProbeResult]:
        calls.append("ran")
        return {}

    monkeypatch.setattr(facts_module, "run_probes", probes)
    # WHEN judged with the defaults, then with probes=False
    judge_all(REPO_ADRS, tmp_path, environment="cpu-2core-24g")
    judge_all(REPO_ADRS, tmp_path, environment="cpu-2core-24g", probes=False)
    # THEN the probes ran once: by default
    assert calls == ["ran"]


# --- the verdict types, exactly (killed mutants of verdicts.py) --------------------------------


def test_a_plain_verdict_carries_no_reason_calculation_or_interval() -> None:
    from adrbench.decisions.verdicts import Kind, Verdict

    verdict = Verdict(Kind.CLAIM, "c", "text", "a < b", Outcome.HOLDS, {"a": 1.0})
    assert verdict.reason is None
    assert verdict.computed == {} and verdict.intervals == {}
    assert verdict.resolve is None and verdict.gap is None


@pytest.mark.parametrize("name", ["Verdict", "AdrVerdicts", "Judgement", "EnvironmentVerdicts"])
def test_verdict_records_are_frozen_and_slotted(name: str) -> None:
    import dataclasses

    from adrbench.decisions import verdicts

    cls = getattr(verdicts, name)
    params = cls.__dataclass_params__
    assert params.frozen, f"{name} must be immutable: verdicts are shared between reports"
    assert "__slots__" in cls.__dict__ and dataclasses.is_dataclass(cls)


def test_an_adr_is_inconclusive_exactly_when_one_verdict_is() -> None:
    plain = make_adr_verdicts(
        [make_verdict("claim", "a", "holds"), make_verdict("trigger", "b", "not fired")]
    )
    assert not plain.inconclusive and not plain.needs_attention
    mixed = replace(plain, verdicts=(*plain.verdicts, make_verdict("claim", "c", "inconclusive")))
    assert mixed.inconclusive and not mixed.needs_attention


def test_a_what_if_reason_names_every_overridden_fact(adrs: dict[int, Adr]) -> None:
    # GIVEN two facts of one claim overridden
    what_if = {"results.full.peak_memory_bytes": "2GiB", "results.lora.peak_memory_bytes": "1GiB"}
    facts = build_facts(make_finetune_sts_run(), what_if=what_if, probes=False)
    verdicts = judge_adr(adrs[1], facts)
    claim = next(v for v in verdicts.verdicts if v.id == "lora-less-memory")
    # THEN the reason lists them, comma-separated, and the claim holds on them
    assert claim.outcome is Outcome.HOLDS
    assert claim.reason == (
        "what-if: results.lora.peak_memory_bytes, results.full.peak_memory_bytes"
    )


def test_an_adr_without_a_status_is_judged_as_status_none(adrs: dict[int, Adr]) -> None:
    facts = build_facts(make_finetune_sts_run(), probes=False)
    verdicts = judge_adr(replace(adrs[3], status=None), facts)
    assert verdicts.status == "none"
    assert judge_adr(adrs[3], facts).status == "accepted"


# --- judge: which run, which ADRs, which facts (mutants of verdicts.py) ------------------------


def test_the_evidence_suite_is_the_one_suite_every_adr_names() -> None:
    from adrbench.decisions.verdicts import _evidence_suite

    def named(*evidence: str) -> Adr:
        return replace(parse_adr(REPO_ADRS / "0003-cosine-similarity-loss.md"), evidence=evidence)

    assert _evidence_suite([named("finetune_sts/full"), named("finetune_sts")]) == "finetune_sts"
    assert _evidence_suite([named("finetune_sts"), named("speed_levers")]) is None
    assert _evidence_suite([named()]) is None


def test_a_judgement_without_a_run_judged_no_runs() -> None:
    facts = build_facts(None, probes=False)
    judgement = Judgement(None, facts, ())
    assert (judgement.runs, judgement.missing, judgement.also) == ((), (), ())
    run = make_finetune_sts_run()
    assert Judgement(run, facts, ()).runs == (run,)


def test_judge_takes_this_machines_run_when_no_environment_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN runs from two machines, the older one from this machine
    here = make_environment("this-machine")
    store.write_run(
        make_finetune_sts_run(run_id="20261128T100000Z-a-b-c", environment=here), tmp_path
    )
    elsewhere = make_environment("elsewhere")
    store.write_run(
        make_finetune_sts_run(run_id="20261128T110000Z-a-b-c", environment=elsewhere), tmp_path
    )
    monkeypatch.setattr("adrbench.machine.this_environment", lambda: here)
    # WHEN judged with no environment named THEN this machine's run decides
    judgement = judge(REPO_ADRS, tmp_path, probes=False)
    assert judgement.run is not None and judgement.run.run_id == "20261128T100000Z-a-b-c"


def test_judge_applies_what_if_and_runs_probes_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_run(make_finetune_sts_run(), tmp_path)
    calls: list[float] = []

    def run_probes(timeout_s: float = 180.0) -> dict[str, ProbeResult]:
        calls.append(timeout_s)
        return {"bnb_nf4_on_cpu": ProbeResult("bnb_nf4_on_cpu", False, "raised on the CPU")}

    monkeypatch.setattr("adrbench.decisions.facts.run_probes", run_probes)
    judgement = judge(REPO_ADRS, tmp_path, run="latest", what_if={"model.parameters": "7B"})
    assert len(calls) == 1  # probes run by default
    adr2 = next(v for v in judgement.verdicts if v.number == 2)
    assert outcomes(adr2)["model-7b"] == "fired"
    assert outcomes(adr2)["bnb-needs-cuda"] == "holds"


def test_judge_lists_the_adrs_whose_suites_the_run_is_not_of(tmp_path: Path) -> None:
    # GIVEN a run of finetune_sts WHEN every ADR is judged on it THEN ADR-0005 (speed_levers) is
    # listed as missing its evidence, and the others are judged
    store.write_run(make_finetune_sts_run(), tmp_path)
    judgement = judge(REPO_ADRS, tmp_path, run="latest", probes=False)
    assert [m.number for m in judgement.missing] == [5]
    assert judgement.missing[0].given_run == "20261128T120000Z-finetune_sts-quick-0001"
    assert [v.number for v in judgement.verdicts] == [1, 2, 3, 4]


def test_judge_environments_judges_each_environment_on_its_own_evidence(tmp_path: Path) -> None:
    from adrbench.decisions.verdicts import judge_environments

    # GIVEN finetune_sts runs from two machines, and no speed_levers or serve_adapters run
    store.write_run(make_finetune_sts_run(run_id="20261128T100000Z-a-b-c"), tmp_path)
    cuda = make_environment("cuda-box", cuda_available=True, device_kind="cuda")
    store.write_run(
        make_finetune_sts_run(run_id="20261128T110000Z-a-b-c", environment=cuda), tmp_path
    )
    # WHEN every ADR is judged on every environment
    environments = judge_environments(REPO_ADRS, tmp_path, probes=False)
    # THEN one block per environment, by fingerprint, each on its own run
    assert [e.fingerprint for e in environments] == ["cpu-2core-24g", "cuda-box"]
    for environment, run_id, cuda_fired in zip(
        environments,
        ["20261128T100000Z-a-b-c", "20261128T110000Z-a-b-c"],
        ["not fired", "fired"],
        strict=True,
    ):
        (judgement,) = environment.judgements
        assert judgement.run is not None and judgement.run.run_id == run_id
        adr2 = next(v for v in judgement.verdicts if v.number == 2)
        assert outcomes(adr2)["cuda"] == cuda_fired
        # the project declares one adapter served (pyproject.toml): the serving trigger is off
        assert outcomes(adr2)["multi-adapter-serving"] == "not fired"
        # AND ADR-0005, whose suite has no run there, is listed as missing, not judged; ADR-0002
        # is judged on the suite it has, its serving suite listed as missing
        assert [(m.number, m.suites, m.judged) for m in environment.missing] == [
            (2, ("serve_adapters",), True),
            (5, ("speed_levers",), False),
        ]
        assert 5 not in [v.number for v in judgement.verdicts]
    # AND narrowing to one environment by prefix keeps only that one
    only = judge_environments(REPO_ADRS, tmp_path, probes=False, environment="cuda")
    assert [e.fingerprint for e in only] == ["cuda-box"]


def test_an_unknown_verdict_names_every_missing_fact_joined_by_semicolons(tmp_path: Path) -> None:
    # GIVEN a claim on two scenarios the run does not have
    adr = _one_claim(tmp_path, "results.a.samples_per_s < results.b.samples_per_s")
    facts = build_facts(make_finetune_sts_run(), probes=False)
    # WHEN judged THEN it is unknown, with both reasons in order, one "; " between them
    (verdict,) = judge_adr(adr, facts).verdicts
    run_id = make_finetune_sts_run().run_id
    assert verdict.outcome is Outcome.UNKNOWN
    assert verdict.reason == (
        f"results.a: run {run_id} has no scenario 'a'; results.b: run {run_id} has no scenario 'b'"
    )


def test_a_judgement_is_inconclusive_exactly_when_one_of_its_adrs_is() -> None:
    facts = build_facts(make_finetune_sts_run(), probes=False)
    fine = make_adr_verdicts()
    unsure = make_adr_verdicts([make_verdict("claim", "x", "inconclusive")])
    assert fine.inconclusive is False and unsure.inconclusive is True
    assert Judgement(None, facts, (fine,)).inconclusive is False
    assert Judgement(None, facts, (fine, unsure)).inconclusive is True
