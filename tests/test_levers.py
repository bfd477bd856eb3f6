"""The speed levers of bench/speed_levers.toml, each checked on the tiny model.

Pre-tokenised batches equal on-the-fly ones exactly; length-grouped batching covers every pair
exactly once an epoch; fused and foreach AdamW take the same steps as the default; bf16 autocast
really computes in bf16; torch.compile trains where it works and is skipped with its reason where
it does not; none of the levers changes the fingerprint of a scenario that does not use it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adrbench.engine import measure
from adrbench.engine.data import load_stsb
from adrbench.engine.models import load_sentence_transformer
from adrbench.engine.scenario import Scenario
from adrbench.engine.tokenized import TokenizedSentences
from adrbench.engine.train import make_optimizer, plan_batches, train
from adrbench.engine.worker import resolve_loss, run_scenario
from adrbench.errors import ScenarioError
from adrbench.results.metrics import flatten_metrics
from adrbench.results.record import Status


def tiny(tiny_model: Path, **fields: object) -> Scenario:
    base: dict[str, object] = {
        "name": "tiny",
        "model": str(tiny_model),
        "method": "full",
        "max_steps": 6,
        "timing_warmup_steps": 2,
        "batch_size": 8,
        "eval_pairs": 16,
        "learning_rate": 1e-3,
        "timeout_s": 300,
    }
    base.update(fields)
    return Scenario.from_mapping(base)


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert set(a) == set(b)
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == b[key].dtype and value.shape == b[key].shape, key
            assert torch.equal(value, b[key]), key
        else:
            assert value == b[key], key


@pytest.mark.parametrize("max_seq_length", [None, 6])
@pytest.mark.parametrize("batching", ["shuffled", "length_grouped"])
def test_pretokenized_batches_equal_on_the_fly_ones_exactly(
    tiny_model: Path, tiny_stsb: Path, batching: str, max_seq_length: int | None
) -> None:
    # GIVEN the tiny model (the real MiniLM tokenizer), truncating to 6 tokens in one case
    model = load_sentence_transformer(str(tiny_model), "cpu")
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    split = load_stsb(tiny_stsb).train
    # WHEN the split is tokenised once, in chunks smaller than the split
    tokenized = TokenizedSentences.of(model, split.sentence1, chunk=7)
    lengths = [len(s.split()) for s in split.sentence1]
    scenario = Scenario(name="s", batch_size=5, seed=1, batching=batching)  # type: ignore[arg-type]
    # THEN every batch of the plan equals what preprocess makes from the raw sentences
    for batch in plan_batches(len(split), scenario, lengths):
        _same(tokenized.batch(batch), model.preprocess([split.sentence1[i] for i in batch]))


@settings(max_examples=200, deadline=None)
@given(
    n_pairs=st.integers(1, 400),
    batch_size=st.integers(1, 40),
    epochs=st.sampled_from([1, 2, 3, 0.5, 1.5, 2.25]),
    seed=st.integers(0, 2**31),
    data=st.data(),
)
def test_length_grouped_batching_covers_every_pair_exactly_once_an_epoch(
    n_pairs: int, batch_size: int, epochs: float, seed: int, data: st.DataObject
) -> None:
    lengths = data.draw(st.lists(st.integers(1, 256), min_size=n_pairs, max_size=n_pairs))
    scenario = Scenario(
        name="s", batch_size=batch_size, epochs=epochs, seed=seed, batching="length_grouped"
    )
    plan = plan_batches(n_pairs, scenario, lengths)
    per_epoch = math.ceil(n_pairs / batch_size)
    whole = math.floor(epochs)
    assert len(plan) == whole * per_epoch + math.ceil((epochs - whole) * n_pairs / batch_size)
    assert all(0 < len(batch) <= batch_size for batch in plan)
    for epoch in range(whole):  # every whole epoch: each pair exactly once
        batches = plan[epoch * per_epoch : (epoch + 1) * per_epoch]
        assert sorted(i for batch in batches for i in batch) == list(range(n_pairs))
    rest = [i for batch in plan[whole * per_epoch :] for i in batch]  # a part epoch: no repeats
    assert len(rest) == len(set(rest))


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_foreach_and_fused_adamw_take_the_default_steps_on_the_cpu(impl: str) -> None:
    # GIVEN two copies of the same parameters and the same gradients
    torch.manual_seed(0)
    start = [torch.randn(16, 8), torch.randn(8)]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    reference = [torch.nn.Parameter(t.clone()) for t in start]
    opt = make_optimizer(ours, Scenario(name="s", optimizer_impl=impl))  # type: ignore[arg-type]
    ref = make_optimizer(reference, Scenario(name="s"))
    # THEN the optimizer really uses that implementation
    assert opt.defaults[impl] is True and ref.defaults["fused"] is None
    # WHEN both take five steps
    for _ in range(5):
        grads = [torch.randn_like(t) for t in start]
        for params, optimizer in ((ours, opt), (reference, ref)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            optimizer.step()
    # THEN they agree to float32 rounding
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_optimizer_impl_applies_to_adamw_only() -> None:
    with pytest.raises(ScenarioError) as error:
        Scenario.from_mapping(
            {"name": "s", "optimizer": "sgd", "optimizer_impl": "fused"}, source="x.toml"
        )
    assert str(error.value) == (
        "x.toml: scenario 's': optimizer_impl='fused' applies to AdamW only; "
        "set optimizer='adamw' or optimizer_impl='default'"
    )
    with pytest.raises(ScenarioError, match=r"optimizer_impl='fast' is not allowed"):
        Scenario(name="s", optimizer_impl="fast")  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match=r"compile='yes' must be true or false"):
        Scenario(name="s", compile="yes")  # type: ignore[arg-type]


def test_levers_left_at_their_defaults_keep_the_fingerprints_recorded_before_them() -> None:
    # Values computed with the Scenario of commit 9acf0d1, before the levers existed.
    assert Scenario(name="s").fingerprint() == "809463b99b926b83"
    before = Scenario(
        name="full", method="full", dtype="bfloat16", batching="length_grouped", threads=2
    )
    assert before.fingerprint() == "a1b95279d527a239"
    for lever in ({"pretokenize": True}, {"optimizer_impl": "fused"}, {"compile": True}):
        changed = Scenario.from_mapping({**before.to_mapping(), **lever})
        assert changed.fingerprint() != before.fingerprint(), lever


def test_bf16_autocast_really_computes_in_bf16_in_a_training_step(
    tiny_model: Path, tiny_stsb: Path
) -> None:
    # GIVEN a hook that records the output dtype of every linear layer
    model = load_sentence_transformer(str(tiny_model), "cpu")
    seen: set[torch.dtype] = set()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(lambda mod, args, out: seen.add(out.dtype))
    scenario = tiny(tiny_model, dtype="bfloat16", max_steps=3, timing_warmup_steps=1)
    # WHEN it trains three steps with bf16 autocast
    log = train(
        model,
        resolve_loss(scenario.loss, model),
        load_stsb(tiny_stsb).train,
        scenario,
        "cpu",
    )
    # THEN the matmuls ran in bf16 and the weights stayed fp32
    assert log.steps == 3 and math.isfinite(log.final_loss)
    assert seen == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize(
    "lever",
    [  # every lever at least once, in three runs to keep the fast suite fast
        {"dtype": "bfloat16", "batching": "length_grouped"},
        {"pretokenize": True, "optimizer_impl": "fused", "threads": 1},
        {"method": "lora", "pretokenize": True, "optimizer_impl": "foreach"},
    ],
    ids=lambda lever: "+".join(f"{k}={v}" for k, v in lever.items()),
)
def test_each_lever_trains_and_reports_flops_on_real_and_padded_tokens(
    lever: dict[str, object], tiny_model: Path, tiny_stsb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the peak matmul watched for the dtype it is timed in
    peak_dtypes: list[torch.dtype] = []
    timed_peak = measure.matmul_peak_flops_per_s

    def watched(device: str, dtype: torch.dtype, **kwargs: float) -> float:
        peak_dtypes.append(dtype)
        return timed_peak(device, dtype, **kwargs)

    monkeypatch.setattr(measure, "matmul_peak_flops_per_s", watched)
    scenario = tiny(tiny_model, **lever)
    # WHEN the scenario runs
    result = run_scenario(scenario, data_dir=tiny_stsb, progress=lambda e: None)
    # THEN it trains, its peak is timed in its own dtype (bf16 for a bf16 scenario), and FLOP/s
    # on real tokens is the padded figure scaled by the real share of the tokens
    assert result.status is Status.OK, result.failure
    assert peak_dtypes == [getattr(torch, scenario.dtype)] * 2  # before and after training
    assert result.metrics is not None
    flat = flatten_metrics(result.metrics)
    t = result.metrics.throughput
    real_share = sum(t.step_real_tokens) / sum(t.step_padded_tokens)
    assert 0 < real_share <= 1
    assert flat["real_token_flops_per_s"] == pytest.approx(flat["train_flops_per_s"] * real_share)
    assert flat["real_token_fraction_of_peak"] == pytest.approx(
        flat["real_token_flops_per_s"] / flat["matmul_peak_flops_per_s"]
    )
    assert flat["padding_fraction"] == pytest.approx(1 - real_share)


def test_the_peak_is_the_better_of_the_calibrations_before_and_after_training(
    tiny_model: Path, tiny_stsb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a calibration before training that other work halved, and an undisturbed one after
    readings = iter([1.0e11, 2.0e11])
    monkeypatch.setattr(measure, "matmul_peak_flops_per_s", lambda *a, **k: next(readings))
    # WHEN a scenario runs
    result = run_scenario(tiny(tiny_model), data_dir=tiny_stsb, progress=lambda e: None)
    # THEN its peak, and the fraction of it, come from the undisturbed reading
    assert result.status is Status.OK, result.failure
    assert result.metrics is not None
    compute = result.metrics.compute
    assert compute.matmul_peak_flops_per_s == 2.0e11
    assert compute.fraction_of_peak == pytest.approx(compute.train_flops_per_s / 2.0e11)


def test_a_scenario_that_cannot_compile_here_is_skipped_with_the_reason(
    tiny_model: Path, tiny_stsb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a torch.compile that fails the way a missing C++ toolchain does
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("InductorError: CppCompileError: C++ compile error\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    # WHEN a compile scenario runs
    result = run_scenario(
        tiny(tiny_model, compile=True), data_dir=tiny_stsb, progress=lambda e: None
    )
    # THEN it is skipped, naming the error's first line and the way out
    assert result.status is Status.SKIPPED
    assert result.skip is not None and result.skip.reason == "compile_unavailable"
    assert result.skip.message == (
        "torch.compile cannot run on cpu here (RuntimeError: InductorError: CppCompileError: "
        "C++ compile error); run without compile=true"
    )


@pytest.mark.slow
def test_compile_trains_the_tiny_model_where_torch_compile_works_here(
    tiny_model: Path, tiny_stsb: Path
) -> None:
    result = run_scenario(
        tiny(tiny_model, compile=True), data_dir=tiny_stsb, progress=lambda e: None
    )
    if result.status is Status.SKIPPED:
        assert result.skip is not None
        pytest.skip(f"torch.compile does not work on this machine: {result.skip.message}")
    assert result.status is Status.OK, result.failure
    assert result.metrics is not None and result.metrics.steps == 6


def test_the_speed_levers_suite_changes_one_thing_per_lever_and_trains_a_full_epoch() -> None:
    from adrbench.engine.suite import load_suite

    suite = load_suite(Path(__file__).resolve().parents[1] / "bench" / "speed_levers.toml")
    full = {s.name: s for s in suite.scenarios("full")}
    default = full["full_default"].to_mapping()
    assert full["full_default"].epochs == 1 and full["full_default"].max_steps is None
    assert full["full_default"].eval_pairs is None  # all 1379 test pairs decide the accuracy

    # how many seeds a scenario runs is not a lever: the judged scenarios run three
    repetition = {"name", "seed", "seeds", "repeats"}

    def changed(name: str) -> dict[str, object]:
        mapping = full[name].to_mapping()
        return {k: v for k, v in mapping.items() if k not in repetition and v != default.get(k)}

    assert changed("full_bf16") == {"dtype": "bfloat16"}
    assert changed("full_grouped") == {"batching": "length_grouped"}
    assert changed("full_pretokenized") == {"pretokenize": True}
    assert changed("full_fused_adamw") == {"optimizer_impl": "fused"}
    assert changed("full_compile") == {"compile": True}
    assert changed("full_1thread") == {"threads": 1}
    best = changed("full_best")
    assert best == {
        "dtype": "bfloat16",
        "batching": "length_grouped",
        "pretokenize": True,
        "optimizer_impl": "fused",
    }
    assert changed("full_best_compile") == {**best, "compile": True}
    # AND the scenarios the ADR compares run the same seeds, so their processes pair up
    judged = ["full_default", "full_bf16", "full_best", "full_best_compile"]
    assert {full[n].repetition_seeds() for n in judged} == {(42, 43, 44)}
