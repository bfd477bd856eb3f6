"""Facts a project declares about itself (``[tool.adrbench.facts]`` -> ``project.<name>``), and
the facts and verdicts of serving scenarios (ADR-0002's multi-adapter trigger and claim)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adrbench.cli import main
from adrbench.decisions.expressions import Missing
from adrbench.decisions.facts import build_facts
from adrbench.errors import UserError
from adrbench.project import declared_facts, load_settings
from adrbench.results.store import write_run
from adrbench.stats import Estimate
from factories import make_environment, make_run, make_serving

REPO = Path(__file__).resolve().parents[1]


def _pyproject(tmp_path: Path, facts: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(f"[tool.adrbench.facts]\n{facts}\n", encoding="utf-8")
    return path


def test_declared_facts_are_read_as_project_facts(tmp_path: Path) -> None:
    path = _pyproject(
        tmp_path, 'adapters_served = 16\nregion = "eu"\nregulated = true\nshare = 0.5'
    )
    settings = load_settings(path)
    assert dict(settings.facts) == {
        "adapters_served": 16.0,
        "region": "eu",
        "regulated": True,
        "share": 0.5,
    }
    facts = build_facts(None, probes=False, declared=settings.facts)
    assert facts.lookup("project.adapters_served") == 16.0
    assert facts.lookup("project.region") == "eu"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "adapters_served = 0",
            r"\[tool.adrbench.facts\]: adapters_served = 0 must be an integer >= 1 \(how many "
            r"LoRA adapters the project serves from one base model\); write e.g. "
            r"adapters_served = 1",
        ),
        ("adapters_served = 2.5", r"adapters_served = 2.5 must be an integer >= 1"),
        ('adapters_served = "many"', r"adapters_served = 'many' must be an integer >= 1"),
        ("adapters_served = true", r"adapters_served = True must be an integer >= 1"),
        ("limits = [1, 2]", r"limits = \[1, 2\] must be a boolean, a number or text; write e.g."),
        ("limit = inf", r"limit = inf must be a finite number"),
        ("Bad-Name = 1", r"fact name 'Bad-Name' must be lower-case letters, digits and _"),
        ("when = 2026-01-01", r"when = datetime.date\(2026, 1, 1\) must be a boolean"),
    ],
)
def test_a_bad_declared_fact_is_one_error_naming_the_file_the_value_and_the_fix(
    tmp_path: Path, entry: str, message: str
) -> None:
    path = _pyproject(tmp_path, entry)
    with pytest.raises(UserError, match=message) as caught:
        load_settings(path)
    assert str(caught.value).startswith(f"{path}: [tool.adrbench.facts]")


def test_facts_that_are_not_a_table_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.adrbench]\nfacts = 3\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"\[tool.adrbench.facts\] must be a table of name = value"):
        load_settings(path)


def test_the_cli_reports_a_bad_declared_fact_once_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "adr").mkdir()
    (tmp_path / "results").mkdir()
    _pyproject(tmp_path, "adapters_served = -3")
    monkeypatch.chdir(tmp_path)
    assert main(["check", "--no-probes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "adrbench check: error: pyproject.toml: [tool.adrbench.facts]: adapters_served = -3 "
        "must be an integer >= 1 (how many LoRA adapters the project serves from one base "
        "model); write e.g. adapters_served = 1"
    ]


def test_an_undeclared_project_fact_is_missing_with_the_line_to_add() -> None:
    facts = build_facts(None, probes=False)
    value = facts.lookup("project.adapters_served")
    assert isinstance(value, Missing)
    assert value.reason == (
        "project.adapters_served: the project does not declare it; add `adapters_served = 1` "
        "under [tool.adrbench.facts] in pyproject.toml"
    )
    assert facts.lookup("project.anything_else") is not None  # shape-valid: missing, not unknown
    assert facts.lookup("project._private") is None


def test_what_if_names_a_declared_fact_by_its_own_name_and_keeps_its_rule() -> None:
    facts = build_facts(None, probes=False, declared={"adapters_served": 1.0})
    assert facts.with_what_if({"adapters_served": "16"}).lookup("project.adapters_served") == 16
    assert facts.with_what_if({"project.adapters_served": "4"}).what_if == {
        "project.adapters_served": 4.0
    }
    with pytest.raises(UserError, match=r"project.adapters_served must be an integer >= 1"):
        facts.with_what_if({"adapters_served": "0.5"})
    with pytest.raises(UserError, match=r"project.adapters_served is a number, got 'many'"):
        facts.with_what_if({"adapters_served": "many"})
    # undeclared, the known fact can still be supposed
    bare = build_facts(None, probes=False)
    assert bare.with_what_if({"adapters_served": "2"}).lookup("project.adapters_served") == 2


def test_declared_facts_belong_to_the_project_of_the_adr_folder(tmp_path: Path) -> None:
    (tmp_path / "adr").mkdir()
    _pyproject(tmp_path, "adapters_served = 3")
    assert dict(declared_facts(tmp_path / "adr")) == {"adapters_served": 3.0}
    assert declared_facts(REPO / "adr") == {"adapters_served": 1.0}


def test_serving_facts_are_estimates_across_processes_and_training_ones_missing() -> None:
    run = make_run(
        [
            make_serving("adapters_16", adapters=16, seeds=(42, 43, 44), spread_bytes=2**20),
            make_serving("merged_16", adapters=16, merged=True, per_variant_bytes=90_000_000),
        ],
        suite="serve_adapters",
    )
    facts = build_facts(run, probes=False)
    resident = facts.lookup("results.adapters_16.resident_memory_bytes")
    assert isinstance(resident, Estimate) and resident.n == 3 and not resident.exact
    assert facts.lookup("results.merged_16.served_variants") == 16
    samples = facts.lookup("results.adapters_16.samples_per_s")
    assert isinstance(samples, Missing)
    assert "'adapters_16' is a serving scenario, which does not train" in samples.reason


def _project_with_serving_run(tmp_path: Path, adapters_served: int) -> Path:
    root = tmp_path / "project"
    shutil.copytree(REPO / "adr", root / "adr")
    (root / "results" / "runs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f"[tool.adrbench.facts]\nadapters_served = {adapters_served}\n", encoding="utf-8"
    )
    names = [(n, merged) for n in (1, 4, 16, 64) for merged in (False, True)]
    run = make_run(
        [
            make_serving(
                f"{'merged' if merged else 'adapters'}_{n}",
                adapters=n,
                merged=merged,
                per_variant_bytes=90_000_000 if merged else 1_400_000,
                seeds=(42, 43, 44),
                spread_bytes=2**20,
            )
            for n, merged in names
        ],
        run_id="20261208T010000Z-serve_adapters-quick-0001",
        suite="serve_adapters",
        environment=make_environment(),
    )
    write_run(run, root / "results")
    return root


def test_adr_0002_s_serving_trigger_fires_only_when_more_adapters_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the project's ADRs, a serving run, and one adapter declared
    root = _project_with_serving_run(tmp_path, adapters_served=1)
    monkeypatch.chdir(root)
    # WHEN ADR-0002 is checked as it is, and as if 16 adapters were served
    main(["check", "2", "--no-probes", "--env", "cpu"])
    plain = capsys.readouterr().out
    main(["check", "2", "--no-probes", "--env", "cpu", "--what-if", "adapters_served=16"])
    supposed = capsys.readouterr().out
    # THEN the claim on the serving evidence holds both times, and the trigger fires only then
    for out in (plain, supposed):
        claim = next(ln for ln in out.splitlines() if "adapters-share-base" in ln)
        assert claim.split()[0] == "holds"
    trigger = [
        ln for ln in plain.splitlines() if "multi-adapter-serving" in ln and "FIRED" not in ln
    ]
    assert trigger and trigger[-1].split()[:2] == ["not", "fired"]
    assert "project.adapters_served = 1" in plain
    fired = [ln for ln in supposed.splitlines() if " multi-adapter-serving " in ln]
    assert fired[-1].split()[0] == "FIRED"
    assert "project.adapters_served = 16 (what-if)" in supposed
