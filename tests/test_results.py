from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from adrbench.errors import ResultsError
from adrbench.results import store
from adrbench.results.record import SCHEMA_VERSION, run_from_json, run_to_json
from adrbench.results.store import latest_run, load_run, write_run
from factories import make_failed, make_run


def test_run_record_round_trips_through_json() -> None:
    run = make_run()
    assert run_from_json(run_to_json(run)) == run


def test_failed_scenario_round_trips_with_its_stderr_tail() -> None:
    run = make_run([make_failed("crash", message="segfault")])
    back = run_from_json(run_to_json(run))
    assert back.scenarios[0].failure == run.scenarios[0].failure


def test_corrupt_results_file_gives_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"schema_version": 1,', encoding="utf-8")
    with pytest.raises(ResultsError) as info:
        load_run(path)
    assert str(info.value) == (
        f"{path}: not valid JSON (Expecting property name enclosed in double quotes at line 1 "
        "column 22); restore it from git or delete it and rerun `adrbench run`"
    )


def test_future_schema_is_refused_with_the_upgrade_command(tmp_path: Path) -> None:
    data = json.loads(run_to_json(make_run()))
    data["schema_version"] = SCHEMA_VERSION + 1
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(
        ResultsError, match=rf"newer than this adrbench understands \({SCHEMA_VERSION}\); upgrade"
    ):
        load_run(path)


def test_schema_0_is_migrated_forward() -> None:
    data = json.loads(run_to_json(make_run()))
    del data["schema_version"]
    data["version"] = 0
    assert run_from_json(json.dumps(data)) == make_run()


def test_wrong_field_type_names_the_exact_path() -> None:
    data = json.loads(run_to_json(make_run()))
    data["scenarios"][0]["metrics"]["memory"]["peak_rss_bytes"] = "lots"
    with pytest.raises(ResultsError) as info:
        run_from_json(json.dumps(data), source="r.json")
    assert (
        str(info.value)
        == "r.json.scenarios[0].metrics.memory.peak_rss_bytes: expected int, got 'lots'"
    )


def test_write_never_overwrites_and_latest_is_the_newest(tmp_path: Path) -> None:
    old = make_run(run_id="20261128T120000Z-s-quick-aaaa")
    new = make_run(run_id="20261128T130000Z-s-quick-bbbb")
    write_run(new, tmp_path)
    write_run(old, tmp_path)
    assert latest_run(tmp_path) == new
    with pytest.raises(ResultsError, match="already exists"):
        write_run(new, tmp_path)
    twin = json.loads((tmp_path / "runs" / f"{new.run_id}.benchmark.json").read_text())
    assert [b["name"] for b in twin["benchmarks"]] == ["train_step[full]", "train_step[lora]"]
    assert twin["adrbench_not_measured"] == [
        {"name": "qlora", "status": "skipped", "why": "cuda_unavailable"}
    ]


def test_a_results_folder_names_its_newest_run(tmp_path: Path) -> None:
    from adrbench.results.store import resolve_run

    write_run(make_run(run_id="20261128T120000Z-s-quick-aaaa"), tmp_path)
    write_run(make_run(run_id="20261128T130000Z-s-quick-bbbb"), tmp_path)
    assert resolve_run(str(tmp_path)).run_id == "20261128T130000Z-s-quick-bbbb"
    assert resolve_run("20261128T120000Z-s-quick-aaaa", tmp_path).run_id.endswith("aaaa")


def test_a_full_profile_run_stays_the_evidence_when_a_newer_quick_run_arrives(
    tmp_path: Path,
) -> None:
    from adrbench.results.store import evidence_run

    full = make_run(run_id="20261128T120000Z-s-full-aaaa", profile="full")
    quick = make_run(run_id="20261128T130000Z-s-quick-bbbb", profile="quick")
    write_run(full, tmp_path)
    write_run(quick, tmp_path)
    assert latest_run(tmp_path) == quick
    assert evidence_run(tmp_path) == full
    assert evidence_run(tmp_path, environment="elsewhere") is None


def test_a_missing_field_names_its_path_in_the_file() -> None:
    data = json.loads(run_to_json(make_run()))
    del data["scenarios"][0]["metrics"]["memory"]["peak_rss_bytes"]
    with pytest.raises(ResultsError) as info:
        run_from_json(json.dumps(data), source="r.json")
    assert str(info.value) == "r.json.scenarios[0].metrics.memory: missing field 'peak_rss_bytes'"


def test_a_write_that_fails_midway_leaves_neither_the_file_nor_a_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a disk that fails at the moment the finished file would be linked into place
    def full_disk(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", full_disk)  # store links the finished file into place
    # WHEN a run is written
    # THEN one clear error names the file and the cause (no traceback)
    with pytest.raises(ResultsError, match=r"cannot be written \(No space left on device\)"):
        store.write_run(make_run(), tmp_path)
    # AND no half-written results file and no temporary is left behind
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_second_writer_of_one_run_id_keeps_the_first_file_whole(tmp_path: Path) -> None:
    first = store.write_run(make_run(), tmp_path)
    before = first.read_bytes()
    with pytest.raises(ResultsError, match=r"already exists; run ids are unique"):
        store.write_run(make_run(started_at="2026-11-28T13:00:00Z"), tmp_path)
    assert first.read_bytes() == before
    twin = first.with_name(first.name.replace(".json", ".benchmark.json"))
    assert sorted(p.name for p in first.parent.iterdir()) == [twin.name, first.name]
