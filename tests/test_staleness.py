"""Stale evidence: an edited scenario, another training stack or changed measuring code make a
run stale, each named; documentation and report changes never do."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from adrbench.decisions.staleness import judge_staleness
from adrbench.engine.suite import load_suite, parse_override
from adrbench.results.record import Provenance, RunRecord, ScenarioResult
from factories import make_environment, make_ok, make_run

SUITE = Path(__file__).parents[1] / "bench" / "finetune_sts.toml"
STACK = {"torch": "2.13.0", "transformers": "5.23.0", "sentence-transformers": "6.2.0",
         "peft": "0.21.2", "bitsandbytes": "0.50.2"}  # fmt: skip
CODE = "c0de" * 16


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A scratch checkout: the suite file and a README."""
    (tmp_path / "bench").mkdir()
    shutil.copy(SUITE, tmp_path / "bench" / "finetune_sts.toml")
    (tmp_path / "README.md").write_text("# docs\n", encoding="utf-8")
    return tmp_path


def _run(root: Path, *, provenance: bool = True) -> RunRecord:
    """A quick run of the scratch suite's full and lora scenarios, recorded as schema 2 does."""
    scenarios = load_suite(root / "bench" / "finetune_sts.toml").scenarios("quick")
    results: list[ScenarioResult] = [
        make_ok(s.name, scenario=s) for s in scenarios if s.method in ("full", "lora")
    ]
    env = make_environment("here", packages=dict(STACK))
    run = make_run(results, environment=env)
    if not provenance:
        return run
    return dataclasses.replace(
        run,
        provenance=Provenance(
            suite_file="bench/finetune_sts.toml",
            overrides={},
            scenario_fingerprints={r.name: r.fingerprint for r in results},
            measuring_code_sha256=CODE,
        ),
    )


def _judge(run: RunRecord, root: Path, **kwargs: object) -> tuple[str, ...]:
    options: dict[str, object] = {
        "this_environment": "here",
        "installed": STACK,
        "code_sha256": CODE,
    }
    options.update(kwargs)
    return judge_staleness(run, root=root, **options).reasons  # type: ignore[arg-type]


def test_an_unchanged_checkout_is_fresh(root: Path) -> None:
    staleness = judge_staleness(
        _run(root), root=root, this_environment="here", installed=STACK, code_sha256=CODE
    )
    assert staleness.summary() == "fresh"
    assert not staleness.stale


def test_an_edited_scenario_makes_the_run_stale_naming_it(root: Path) -> None:
    # GIVEN a run, then the lora scenario's rank edited in the suite
    run = _run(root)
    suite = root / "bench" / "finetune_sts.toml"
    text = suite.read_text(encoding="utf-8")
    assert "lora = { r = 8" in text or "r = 8" in text
    suite.write_text(text.replace("r = 8", "r = 16", 1), encoding="utf-8")
    # WHEN judged THEN stale, naming the scenario, the field and both values
    reasons = _judge(run, root)
    assert len(reasons) == 1
    assert reasons[0].startswith("scenario")
    assert reasons == ("scenario lora changed in bench/finetune_sts.toml: lora.r 8 -> 16",)


def test_a_docs_or_report_change_never_makes_evidence_stale(root: Path) -> None:
    # GIVEN a run, then the README and an ADR appendix rewritten
    run = _run(root)
    (root / "README.md").write_text("# new docs\n", encoding="utf-8")
    (root / "adr" / "appendix").mkdir(parents=True)
    (root / "adr" / "appendix" / "0001-x.md").write_text("new report\n", encoding="utf-8")
    # WHEN judged (the measuring code hash is the engine's, unchanged) THEN nothing is stale
    assert _judge(run, root) == ()


def test_changed_measuring_code_and_stack_are_named(root: Path) -> None:
    run = _run(root)
    reasons = _judge(run, root, code_sha256="f00d" * 16, installed={**STACK, "torch": "2.14.0"})
    assert reasons == (
        "torch 2.13.0 -> 2.14.0",
        "measuring code (src/adrbench/engine/*.py) changed: c0dec0dec0de -> f00df00df00d",
    )


def test_another_machines_stack_is_not_compared(root: Path) -> None:
    # GIVEN a run of another machine WHEN judged here with another torch THEN not stale for that
    staleness = judge_staleness(
        _run(root), root=root, this_environment="elsewhere",
        installed={**STACK, "torch": "9.9"}, code_sha256=CODE,
    )  # fmt: skip
    assert not staleness.stale
    assert "training stack not compared (another machine's installed packages)" in staleness.notes


def test_a_run_before_schema_2_is_reported_as_unknown_code_not_fresh(root: Path) -> None:
    staleness = judge_staleness(
        _run(root, provenance=False), root=root, this_environment="here", installed=STACK
    )
    assert not staleness.stale
    assert staleness.summary().startswith("no change found (not checked: ")
    assert "measuring code unknown (recorded before schema 2)" in staleness.notes


def test_recorded_overrides_are_applied_before_comparing(root: Path) -> None:
    # GIVEN a run made with --set max_steps=5 (recorded) WHEN judged THEN not stale for it
    suite = load_suite(root / "bench" / "finetune_sts.toml")
    scenarios = suite.scenarios("quick", only=["full"], overrides=[parse_override("max_steps=5")])
    results = [make_ok("full", scenario=scenarios[0])]
    run = dataclasses.replace(
        make_run(results, environment=make_environment("here", packages=dict(STACK))),
        provenance=Provenance(
            suite_file="bench/finetune_sts.toml",
            overrides={"max_steps": "5"},
            scenario_fingerprints={"full": results[0].fingerprint},
            measuring_code_sha256=CODE,
        ),
    )
    assert _judge(run, root) == ()
