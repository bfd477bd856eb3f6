"""The facts namespace: env, model, results and probes, what-if overrides, and the probes."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from adrbench.decisions import probes
from adrbench.decisions.expressions import Missing
from adrbench.decisions.facts import build_facts, parse_what_if, schema_facts
from adrbench.decisions.probes import ProbeResult, ProbeSpec, ProbeUnavailable
from adrbench.errors import UserError
from adrbench.stats import Estimate
from factories import (
    LORA_TRAINABLE,
    MEASURED,
    MINILM_PARAMETERS,
    make_environment,
    make_failed,
    make_finetune_sts_run,
    make_ok,
    make_run,
    make_skipped,
)


def test_env_facts_come_from_the_run() -> None:
    # GIVEN a run recorded on a CPU machine WHEN facts are built THEN env mirrors its environment
    facts = build_facts(make_finetune_sts_run(), probes=False)
    assert facts.lookup("env.device") == "cpu"
    assert facts.lookup("env.cuda_available") is False
    assert facts.lookup("env.mps_available") is False
    assert facts.lookup("env.memory_bytes") == 24 * 2**30
    assert facts.lookup("env.cores") == 2
    assert facts.lookup("env.packages.bitsandbytes") == "0.50.2"
    assert facts.run_id == "20261128T120000Z-finetune_sts-quick-0001"


def test_model_parameters_come_from_the_full_scenario() -> None:
    # GIVEN a run with a full scenario WHEN facts are built THEN model.parameters is its total
    facts = build_facts(make_finetune_sts_run(), probes=False)
    assert facts.lookup("model.parameters") == MINILM_PARAMETERS


def test_model_parameters_fall_back_to_lora_total_minus_trainable() -> None:
    # GIVEN only a LoRA scenario WHEN facts are built THEN the base count excludes the adapters
    lora = make_ok(
        "lora",
        method="lora",
        trainable_parameters=LORA_TRAINABLE,
        total_parameters=MINILM_PARAMETERS + LORA_TRAINABLE,
    )
    facts = build_facts(make_run([lora, make_skipped("qlora")]), probes=False)
    assert facts.lookup("model.parameters") == MINILM_PARAMETERS


def test_model_parameters_are_missing_without_an_ok_full_or_lora_scenario() -> None:
    # GIVEN only a skipped scenario WHEN facts are built THEN model.parameters is missing, and why
    facts = build_facts(make_run([make_skipped("qlora")]), probes=False)
    assert facts.lookup("model.parameters") == Missing(
        "model.parameters: run 20261128T120000Z-finetune_sts-quick-0001 has no ok full or lora "
        "scenario to count from"
    )


def _mean(value: object) -> float:
    assert isinstance(value, Estimate), value
    return value.mean


def test_every_catalogued_metric_of_an_ok_scenario_is_a_fact() -> None:
    # GIVEN an ok LoRA scenario run once WHEN facts are built THEN its metrics, status and reason
    # are there: exact metrics as numbers, noisy ones as n=1 estimates with their process noise
    facts = build_facts(make_finetune_sts_run(repeats=1), probes=False)
    assert facts.lookup("results.lora.status") == "ok"
    assert facts.lookup("results.lora.reason") == ""
    assert facts.lookup("results.lora.trainable_parameters") == LORA_TRAINABLE
    assert _mean(facts.lookup("results.lora.peak_rss_bytes")) == MEASURED["lora"]["peak_rss_bytes"]
    assert _mean(facts.lookup("results.lora.samples_per_s")) == pytest.approx(
        16 / MEASURED["lora"]["step_time_s"]
    )
    assert _mean(facts.lookup("results.lora.test_spearman")) == MEASURED["lora"]["test_spearman"]
    assert facts.lookup("results.lora.test_spearman_before") == 0.82


def test_n1_noisy_metrics_carry_the_documented_process_noise() -> None:
    # GIVEN one repetition (threads = torch default, i.e. several) WHEN facts are built THEN speed
    # has a 9% prior SD, peak RSS 100 MB and test Spearman 0.01, as a normal 95% interval
    facts = build_facts(make_finetune_sts_run(repeats=1), probes=False)
    speed = facts.lookup("results.lora.samples_per_s")
    rss = facts.lookup("results.lora.peak_rss_bytes")
    score = facts.lookup("results.lora.test_spearman")
    assert isinstance(speed, Estimate) and isinstance(rss, Estimate)
    assert isinstance(score, Estimate)
    assert (speed.method, speed.n) == ("prior", 1)
    assert speed.se == pytest.approx(0.09 * 16 / MEASURED["lora"]["step_time_s"])
    assert rss.half_width == pytest.approx(1.959964 * 100e6, rel=1e-6)
    lora_score = MEASURED["lora"]["test_spearman"]
    assert (score.low, score.high) == pytest.approx(
        (lora_score - 0.0196, lora_score + 0.0196), abs=1e-4
    )


def test_repeated_metrics_are_estimates_paired_by_seed_and_exact_ones_stay_exact() -> None:
    # GIVEN three repetitions (seeds 42-44) WHEN facts are built THEN a metric is the mean with
    # its t-interval and each seed's value; parameter counts have a zero-width interval
    facts = build_facts(make_finetune_sts_run(repeats=3), probes=False)
    rss = facts.lookup("results.lora.peak_rss_bytes")
    params = facts.lookup("results.lora.trainable_parameters")
    assert isinstance(rss, Estimate) and isinstance(params, Estimate)
    assert rss.seeds == (42, 43, 44)
    assert rss.mean == pytest.approx(MEASURED["lora"]["peak_rss_bytes"])
    # values mean - 10 MB, mean, mean + 10 MB: SD 10 MB, SE 5.77 MB, t(0.975, 2) = 4.303
    assert rss.half_width == pytest.approx(4.302653 * 10e6 / 3**0.5, rel=1e-5)
    assert params.exact and params.mean == LORA_TRAINABLE
    assert facts.lookup("model.parameters") == MINILM_PARAMETERS


def test_a_counter_this_device_lacks_is_missing_with_the_device() -> None:
    # GIVEN a CPU run WHEN a CUDA counter is looked up THEN it is missing, not zero
    facts = build_facts(make_finetune_sts_run(), probes=False)
    assert facts.lookup("results.lora.cuda_max_allocated_bytes") == Missing(
        "results.lora.cuda_max_allocated_bytes: not measured on device cpu"
    )


def test_metrics_of_a_skipped_scenario_are_missing_with_the_skip_reason() -> None:
    # GIVEN QLoRA skipped for lack of CUDA WHEN its metrics are looked up THEN they say so
    facts = build_facts(make_finetune_sts_run(), probes=False)
    assert facts.lookup("results.qlora.status") == "skipped"
    assert facts.lookup("results.qlora.reason") == "cuda_unavailable"
    assert facts.lookup("results.qlora.peak_rss_bytes") == Missing(
        "results.qlora is skipped (cuda_unavailable)"
    )


def test_metrics_of_a_failed_scenario_are_missing_with_the_failure() -> None:
    # GIVEN a scenario that raised WHEN its metrics are looked up THEN the failure is the reason
    facts = build_facts(make_run([make_failed("full", message="boom")]), probes=False)
    assert facts.lookup("results.full.reason") == "exception"
    assert facts.lookup("results.full.samples_per_s") == Missing(
        "results.full failed (exception: boom)"
    )


def test_a_scenario_the_run_lacks_is_missing_not_an_unknown_name() -> None:
    # GIVEN a run without full_cosent WHEN its metric is looked up THEN it is missing, with why
    facts = build_facts(make_run(), probes=False)
    assert facts.lookup("results.full_cosent.test_spearman") == Missing(
        "results.full_cosent: run 20261128T120000Z-finetune_sts-quick-0001 has no scenario "
        "'full_cosent'"
    )


def test_names_outside_the_schema_are_unknown_and_get_suggestions() -> None:
    # GIVEN a typo WHEN looked up THEN there is no such fact, and the nearest names are offered
    facts = build_facts(make_finetune_sts_run(), probes=False)
    assert facts.lookup("model.paramters") is None
    assert facts.nearest("model.paramters") == ["model.parameters"]
    assert facts.lookup("results.lora.samples_per_sec") is None
    assert facts.nearest("results.lora.samples_per_sec") == [
        "results.lora.samples_per_s",
        "results.lora.train_flops_per_s",
        "results.lora.swap_p99_s",
    ]


def test_probes_not_run_leave_their_facts_missing() -> None:
    # GIVEN probes switched off WHEN a probe fact is looked up THEN it is missing with the reason
    facts = build_facts(make_finetune_sts_run(), probes=False)
    assert facts.lookup("probes.bnb_nf4_on_cpu") == Missing(
        "probes.bnb_nf4_on_cpu: probes were not run (--no-probes)"
    )


def test_schema_facts_know_every_name_but_no_value() -> None:
    # GIVEN the lint namespace WHEN names are looked up THEN valid ones are missing, typos None
    facts = schema_facts()
    assert isinstance(facts.lookup("results.anything.peak_rss_bytes"), Missing)
    assert isinstance(facts.lookup("env.packages.torch"), Missing)
    assert isinstance(facts.lookup("probes.bnb_nf4_on_cpu"), Missing)
    assert facts.lookup("results.anything.peak_rss") is None
    assert facts.lookup("probes.nope") is None


# --- what-if ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("7B", 7e9),
        ("8GiB", 8 * 2**30),
        ("90%", 0.9),
        ("true", True),
        ("False", False),
        ("cuda", "cuda"),
        ("'a b'", "a b"),
    ],
)
def test_what_if_values_parse_as_quantity_bool_or_text(text: str, value: object) -> None:
    # GIVEN a --what-if VALUE WHEN parsed THEN it is a number, a boolean or text
    assert parse_what_if(text) == value


def test_what_if_overrides_a_fact_and_is_remembered() -> None:
    # GIVEN model.parameters=7B WHEN facts are built THEN the override replaces the measurement
    facts = build_facts(make_finetune_sts_run(), what_if={"model.parameters": "7B"}, probes=False)
    assert facts.lookup("model.parameters") == 7e9
    assert dict(facts.what_if) == {"model.parameters": 7e9}


def test_what_if_on_an_unknown_fact_names_the_nearest() -> None:
    # GIVEN a misspelt what-if name WHEN applied THEN the error suggests the right one
    with pytest.raises(UserError) as info:
        build_facts(make_finetune_sts_run(), what_if={"model.params": "7B"}, probes=False)
    assert str(info.value) == (
        "--what-if model.params=7B: unknown fact 'model.params'; nearest facts: model.parameters, "
        "model.id"
    )


def test_what_if_of_the_wrong_kind_is_refused() -> None:
    # GIVEN a lower-case suffix that is not a number WHEN applied THEN the kind is explained
    with pytest.raises(UserError) as info:
        build_facts(make_finetune_sts_run(), what_if={"model.parameters": "7b"}, probes=False)
    assert str(info.value) == (
        "--what-if model.parameters=7b: model.parameters is a number, got '7b'; write 7B, 22.7M, "
        "8GiB or 0.9"
    )


def test_what_if_can_give_a_missing_fact_a_value() -> None:
    # GIVEN a skipped scenario's metric WHEN overridden THEN it has the value
    facts = build_facts(
        make_finetune_sts_run(), what_if={"results.qlora.peak_rss_bytes": "3GiB"}, probes=False
    )
    assert facts.lookup("results.qlora.peak_rss_bytes") == 3 * 2**30


# --- probes ----------------------------------------------------------------------------------


def test_the_nf4_probe_really_quantizes_on_this_cpu() -> None:
    # GIVEN bitsandbytes installed WHEN the NF4 probe runs in-process THEN it reports what it saw
    pytest.importorskip("bitsandbytes", reason="the [qlora] extra (bitsandbytes) is not installed")
    results = probes.run_probes_in_process()
    on_cpu = results["bnb_nf4_on_cpu"]
    error = results["bnb_nf4_roundtrip_error"]
    # bitsandbytes >= 0.48 quantizes on the CPU; the probe decides from what really happened.
    assert on_cpu.value is True, on_cpu.detail
    assert isinstance(error.value, float)
    assert 0 < error.value < 0.25
    assert "quantized a 64x64 float32 CPU tensor to NF4 (2048 bytes, dtype torch.uint8)" in (
        on_cpu.detail
    )


def test_a_probe_that_cannot_run_is_unknown_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a probe whose package is missing WHEN probes run THEN its facts are None with why
    def unavailable() -> tuple[dict[str, bool | float], str]:
        raise ProbeUnavailable("bitsandbytes is not installed (No module named 'bitsandbytes')")

    spec = ProbeSpec("bnb_nf4_cpu", ("bnb_nf4_on_cpu",), "test", unavailable)
    monkeypatch.setattr(probes, "PROBES", {"bnb_nf4_cpu": spec})
    assert probes.run_probes_in_process() == {
        "bnb_nf4_on_cpu": ProbeResult(
            "bnb_nf4_on_cpu",
            None,
            "probe bnb_nf4_cpu could not run: bitsandbytes is not installed (No module named "
            "'bitsandbytes')",
        )
    }


def test_a_probe_process_that_times_out_makes_every_probe_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a child process that hangs WHEN probes run THEN every probe fact is unknown
    def hang(*args: Any, **kwargs: Any) -> None:
        raise subprocess.TimeoutExpired(cmd="python -m adrbench.decisions.probes", timeout=5)

    monkeypatch.setattr(subprocess, "run", hang)
    results = probes.run_probes(timeout_s=5)
    assert {r.value for r in results.values()} == {None}
    assert results["bnb_nf4_on_cpu"].detail == "probes timed out after 5 s"


def test_an_unknown_probe_reaches_the_facts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN probes that could not run WHEN facts are built THEN the premise fact is missing
    def run_probes(timeout_s: float = 180.0) -> dict[str, ProbeResult]:
        return {"bnb_nf4_on_cpu": ProbeResult("bnb_nf4_on_cpu", None, "probes timed out")}

    monkeypatch.setattr("adrbench.decisions.facts.run_probes", run_probes)
    facts = build_facts(make_run(environment=make_environment()), probes=True)
    assert facts.lookup("probes.bnb_nf4_on_cpu") == Missing(
        "probes.bnb_nf4_on_cpu: probes timed out"
    )
