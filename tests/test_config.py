"""Scenarios and suites: everything invalid fails at load, naming the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from adrbench.engine.scenario import LoraSettings, Scenario
from adrbench.engine.suite import load_suite, parse_override
from adrbench.errors import ScenarioError

REPO = Path(__file__).resolve().parents[1]


def test_scenario_round_trips_through_plain_data() -> None:
    scenario = Scenario(
        name="lora", method="lora", lora=LoraSettings(r=4, target_modules=("query",))
    )
    assert Scenario.from_mapping(scenario.to_mapping()) == scenario


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"method": "qlra"},
            "x: scenario 's': method='qlra' is not allowed; choose one of 'full', 'lora', 'qlora'",
        ),
        (
            {"device": "tpu"},
            "x: scenario 's': device='tpu' is not allowed; "
            "choose one of 'auto', 'cpu', 'cuda', 'mps'",
        ),
        (
            {"dtype": "fp8"},
            "x: scenario 's': dtype='fp8' is not allowed; "
            "choose one of 'float32', 'bfloat16', 'float16'",
        ),
        ({"batch_size": 0}, "x: scenario 's': batch_size=0 must be > 0"),
        ({"batch_size": 2.5}, "x: scenario 's': batch_size=2.5 must be an integer"),
        ({"warmup_ratio": 1.5}, "x: scenario 's': warmup_ratio=1.5 must be in [0, 1)"),
        (
            {"lerning_rate": 1e-4},
            "x: unknown scenario field 'lerning_rate'; did you mean 'learning_rate'?",
        ),
        (
            {"lora": {"rank": 8}},
            "x: unknown lora field 'rank'; known: alpha, dropout, r, target_modules",
        ),
        ({"lora": {"r": 0}}, "x: lora: r=0 must be an integer >= 1"),
    ],
)
def test_invalid_scenario_fields_fail_with_field_value_and_choices(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        Scenario.from_mapping({"name": "s", **fields}, source="x")
    assert str(info.value) == message


def test_fingerprint_ignores_timeout_and_injected_regressions_but_not_settings() -> None:
    base = Scenario(name="s")
    assert (
        Scenario(name="s", timeout_s=5, ballast_mb=10, extra_step_work=0.2).fingerprint()
        == base.fingerprint()
    )
    assert Scenario(name="s", batch_size=32).fingerprint() != base.fingerprint()


def test_the_shipped_suite_has_both_profiles_and_the_adr_scenarios() -> None:
    suite = load_suite(REPO / "bench" / "finetune_sts.toml")
    quick = {s.name: s for s in suite.scenarios("quick")}
    full = {s.name: s for s in suite.scenarios("full")}
    assert set(quick) == set(full) == {"full", "lora", "qlora", "full_cosent"}
    assert quick["full"].max_steps == 40 and quick["full"].eval_pairs == 300
    assert full["full"].max_steps is None and full["full"].eval_pairs is None
    assert (quick["lora"].method, quick["lora"].lora.r, quick["lora"].learning_rate) == (
        "lora",
        8,
        2e-4,
    )
    assert quick["full_cosent"].loss == "CoSENTLoss"


def test_overrides_apply_last_and_unknown_names_are_refused(tmp_path: Path) -> None:
    suite = load_suite(REPO / "bench" / "finetune_sts.toml")
    (only,) = suite.scenarios("quick", only=["lora"], overrides=[parse_override("max_steps=7")])
    assert (only.name, only.max_steps) == ("lora", 7)
    with pytest.raises(ScenarioError) as info:
        suite.scenarios("quick", only=["lorra"])
    names = ", ".join(str(e["name"]) for e in suite.entries)
    assert str(info.value) == (
        f"{suite.path}: no scenario 'lorra'; did you mean 'lora'? (--only takes one of: {names})"
    )
    with pytest.raises(ScenarioError, match=r"no profile 'fast'; this suite has: quick, full"):
        suite.scenarios("fast")


def test_a_bad_scenario_in_any_profile_fails_when_the_suite_loads(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "s"\n[profiles.quick]\n[profiles.full]\nbatch_size = -1\n[[scenario]]\nname = "a"\n'
    )
    with pytest.raises(ScenarioError) as info:
        load_suite(path)
    assert str(info.value) == f"{path}: scenario[0]: scenario 'a': batch_size=-1 must be > 0"


def _kv(text: str) -> tuple[str, object]:
    override = parse_override(text)
    return override.key, override.value


def test_override_values_are_read_as_toml_else_as_strings() -> None:
    assert _kv("extra_step_work=0.15") == ("extra_step_work", 0.15)
    assert _kv("evaluate_before=false") == ("evaluate_before", False)
    assert _kv("model=/tmp/my model") == ("model", "/tmp/my model")
    assert _kv("lora.target_modules=[query, value]") == ("lora.target_modules", ["query", "value"])
    with pytest.raises(ScenarioError, match="expected KEY=VALUE"):
        parse_override("max_steps")


def test_a_dotted_override_sets_one_nested_field_and_keeps_the_others(tmp_path: Path) -> None:
    # GIVEN a suite whose scenario sets lora.alpha
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\n[profiles.quick]\n[[scenario]]\nname = "a"\nlora = {alpha = 32}\n')
    suite = load_suite(path)
    # WHEN --set lora.r=4 and lora.target_modules=[query,value] are given
    overrides = [parse_override("lora.r=4"), parse_override("lora.target_modules=[query,value]")]
    (scenario,) = suite.scenarios("quick", overrides=overrides)
    # THEN those fields change and alpha stays the suite's
    assert (scenario.lora.r, scenario.lora.alpha) == (4, 32)
    assert scenario.lora.target_modules == ("query", "value")


def test_a_bad_override_is_blamed_not_the_suite_file() -> None:
    suite = load_suite(REPO / "bench" / "finetune_sts.toml")
    with pytest.raises(ScenarioError) as info:
        suite.scenarios("quick", overrides=[parse_override("lora.rr=4")])
    assert str(info.value) == (
        "--set 'lora.rr=4': unknown lora field 'rr'; known: alpha, dropout, r, target_modules"
    )
    with pytest.raises(ScenarioError) as info:
        suite.scenarios("quick", overrides=[parse_override("lora.r=0")])
    assert str(info.value) == "--set 'lora.r=0': lora: r=0 must be an integer >= 1"


def test_set_name_is_refused() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_override("name=x")
    assert str(info.value) == (
        "--set 'name=x': 'name' cannot be overridden (every scenario would get the same name); "
        "pick scenarios with --only NAME"
    )


def test_a_suite_that_is_a_directory_or_not_utf8_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_suite(REPO / "bench")
    assert str(info.value).startswith(f"{REPO / 'bench'}: is a directory; name a suite file, e.g. ")
    latin = tmp_path / "latin.toml"
    latin.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ScenarioError) as info:
        load_suite(latin)
    assert str(info.value) == f"{latin}: not UTF-8 text (byte 11); save the suite as UTF-8"
