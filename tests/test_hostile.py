"""Hostile inputs and interrupted runs: one test per defect found by trying adrbench as a hostile
user would (the "hostile inputs" issue). Each fails on the code before the fix.

Every command here answers bad input with one line naming the file, the value and the fix, exit
status 2, and writes nothing outside the folder it owns.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adrbench.cli import main
from adrbench.decisions.adr import lint
from adrbench.engine.environment import capture_git
from adrbench.errors import ResultsError
from adrbench.gate.relative import Side
from adrbench.results import store
from adrbench.results.record import SCHEMA_VERSION, RunRecord, Status, run_from_json, run_to_json
from factories import make_finetune_sts_run

ROOT = Path(__file__).parents[1]
REPO_ADRS = ROOT / "adr"


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (a snapshot to diff)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def adr_copy(tmp_path: Path) -> Path:
    """A copy of the project's ADRs, to break or write into."""
    adr_dir = tmp_path / "adr"
    shutil.copytree(REPO_ADRS, adr_dir)
    return adr_dir


def _one_line_error(err: str, command: str) -> str:
    """The error a command printed, checked to be one line (no traceback)."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"adrbench {command}: error: ")
    return lines[0]


def _hostile_run(tmp_path: Path, run_id: str, name: str = "sent.json") -> Path:
    """A valid run file whose ``run_id`` is ``run_id`` (written as JSON, as an attacker would)."""
    data = json.loads(run_to_json(make_finetune_sts_run()))
    data["run_id"] = run_id
    path = tmp_path / "inbox" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- import: path traversal through the run id -----------------------------------------------


@pytest.mark.parametrize(
    "run_id",
    ["../evil", "../../../../tmp/adrbench-evil/x", "/tmp/adrbench-evil/abs", "a/b"],
)
def test_import_never_writes_outside_runs_through_the_run_id(
    tmp_path: Path, run_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run file whose run_id climbs out of results/runs/ (or is absolute)
    sent = _hostile_run(tmp_path, run_id)
    before = _files(tmp_path)
    evil = Path("/tmp/adrbench-evil")  # where the absolute ids point (left there by an old run?)
    evil_before = sorted(evil.rglob("*")) if evil.exists() else None
    # WHEN imported
    code = main(["import", str(sent), "--results-dir", str(tmp_path / "results")])
    # THEN it is refused in one line naming the file and the id, and nothing at all is written
    assert code == 2
    line = _one_line_error(capsys.readouterr().err, "import")
    assert str(sent) in line and "cannot name a results file" in line
    assert _files(tmp_path) == before
    assert (sorted(evil.rglob("*")) if evil.exists() else None) == evil_before


@pytest.mark.parametrize(
    ("run_id", "problem"),
    [
        ("", "it is empty"),
        (".", "it starts with '.'"),
        ("..", "it starts with '.'"),
        ("20261128T120000Z-x\nsecond-line", "it holds '\\n'"),
        ("r" * 300, "it is 300 characters long (at most 128)"),
    ],
)
def test_a_run_id_that_cannot_name_a_file_is_refused_with_its_reason(
    tmp_path: Path, run_id: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = _hostile_run(tmp_path, run_id)
    assert main(["import", str(sent), "--results-dir", str(tmp_path / "results")]) == 2
    line = _one_line_error(capsys.readouterr().err, "import")
    assert problem in line
    assert len(line) < 400  # a 300-character id is named, not echoed whole
    assert not (tmp_path / "results").exists()


def test_the_naming_rule_is_the_baselines_rule() -> None:
    # A baseline's parts and a run id follow one rule: what names a run can name a baseline.
    from adrbench.gate.baseline import BaselineError, baseline_path

    with pytest.raises(BaselineError, match="it is empty"):
        baseline_path(Path("results"), "", "finetune_sts", "quick")
    with pytest.raises(ValueError, match=r"cannot name a results file: it starts with '\.'"):
        dataclasses.replace(make_finetune_sts_run(), run_id=".hidden")


# --- import and migrate: limits and all-or-nothing -------------------------------------------


def test_import_refuses_a_file_over_the_size_limit_unread_and_the_limit_can_be_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a genuine run padded with a long string field (about 40 KB)
    data = json.loads(run_to_json(make_finetune_sts_run()))
    data["environment"]["packages"]["padding"] = "x" * 40_000
    sent = tmp_path / "big.json"
    sent.write_text(json.dumps(data), encoding="utf-8")
    results = tmp_path / "results"
    # WHEN imported under a 16 KiB limit THEN refused, naming the size, the limit and the option
    assert main(["import", str(sent), "--results-dir", str(results), "--max-size", "16KiB"]) == 2
    line = _one_line_error(capsys.readouterr().err, "import")
    assert f"{sent}: {sent.stat().st_size} bytes, more than the import limit of 16384" in line
    assert "--max-size" in line
    assert not results.exists()
    # AND the documented default is 16 MiB, and raising the limit imports it
    assert getattr(store, "MAX_IMPORT_BYTES", None) == 16 * 2**20
    assert main(["import", str(sent), "--results-dir", str(results), "--max-size", "1MiB"]) == 0


def test_import_of_several_files_writes_all_or_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two valid runs, and a disk that fails on the third file written (the second run)
    first = _hostile_run(tmp_path, "20261128T120000Z-finetune_sts-quick-aaaa", "a.json")
    data = json.loads(run_to_json(make_finetune_sts_run()))
    data["run_id"] = "20261128T130000Z-finetune_sts-quick-bbbb"
    data["started_at"] = "2026-11-28T13:00:00Z"
    second = tmp_path / "inbox" / "b.json"
    second.write_text(json.dumps(data), encoding="utf-8")
    real = os.link
    calls: list[object] = []

    def flaky(source: object, target: object) -> None:
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", flaky)  # the store links each finished file into place
    results = tmp_path / "results"
    # WHEN both are imported
    code = main(["import", str(first), str(second), "--results-dir", str(results)])
    # THEN one error, and the first run (already written) is taken back: nothing imported
    assert code == 2
    assert "No space left on device" in _one_line_error(capsys.readouterr().err, "import")
    assert [p for p in results.rglob("*") if p.is_file()] == []


def test_migrate_rewrites_nothing_when_one_file_is_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two schema-4 runs that need rewriting, and a corrupt third file after them
    results = tmp_path / "results"
    runs = results / "runs"
    runs.mkdir(parents=True)
    for i in range(2):
        data = json.loads(run_to_json(make_finetune_sts_run(run_id=f"20261128T12000{i}Z-a-b-c")))
        data["schema_version"] = 4
        data.pop("interrupted")
        (runs / f"20261128T12000{i}Z-a-b-c.json").write_text(json.dumps(data), encoding="utf-8")
    (runs / "20261128T130000Z-zz-corrupt.json").write_text("{not json", encoding="utf-8")
    before = _files(tmp_path)
    # WHEN migrated
    assert main(["migrate", "--results-dir", str(results)]) == 2
    # THEN the bad file is named, and no file was rewritten
    line = _one_line_error(capsys.readouterr().err, "migrate")
    assert "20261128T130000Z-zz-corrupt.json: not valid JSON" in line
    assert _files(tmp_path) == before


# --- interrupted runs ------------------------------------------------------------------------


def _interrupted(run_id: str) -> RunRecord:
    """A finetune_sts run stopped by SIGTERM while qlora ran: full and lora finished."""
    from adrbench.results.record import Interruption, ScenarioResult

    finished = make_finetune_sts_run(run_id=run_id)
    message = "interrupted (SIGTERM) before this scenario finished"
    scenarios = tuple(
        r if r.name in ("full", "lora") else ScenarioResult.canceled(r.scenario, message)
        for r in finished.scenarios
    )
    return dataclasses.replace(
        finished,
        scenarios=scenarios,
        started_at="2026-11-28T13:00:00Z",
        interrupted=Interruption("SIGTERM"),
    )


def test_an_interrupted_run_is_not_evidence_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a finished run, then a newer run stopped with SIGTERM before qlora could be skipped
    results = tmp_path / "results"
    store.write_run(
        make_finetune_sts_run(run_id="20261128T120000Z-finetune_sts-quick-done"), results
    )
    store.write_run(_interrupted("20261128T130000Z-finetune_sts-quick-stop"), results)
    args = ["check", "2", "--adr-dir", str(REPO_ADRS), "--results-dir", str(results)]
    # WHEN ADR-0002 is checked on the newest run
    code = main([*args, "--results", "latest", "--no-probes"])
    out = capsys.readouterr().out
    # THEN the interrupted run is passed over: the finished one is judged and its claims hold
    assert "Judged against run 20261128T120000Z-finetune_sts-quick-done" in out
    assert code == 0
    # AND every environment's evidence passes it over too
    assert main([*args, "--env", "cpu", "--no-probes"]) == 0
    assert "20261128T120000Z-finetune_sts-quick-done" in capsys.readouterr().out
    # AND named outright it is refused in one line saying how to use it anyway
    assert main([*args, "--results", "20261128T130000Z-finetune_sts-quick-stop"]) == 2
    line = _one_line_error(capsys.readouterr().err, "check")
    assert "was interrupted (SIGTERM; 2 scenario runs canceled)" in line
    assert "--include-interrupted" in line
    # WHEN asked to include it THEN its canceled qlora is unknown, never a failed claim
    code = main([*args, "--results", "latest", "--no-probes", "--include-interrupted"])
    out = capsys.readouterr().out
    assert "Judged against run 20261128T130000Z-finetune_sts-quick-stop" in out
    assert "UNKNOWN    claim    qlora-skipped" in out
    assert "REVISIT" not in out
    assert code == 0


def test_report_and_gate_pass_an_interrupted_run_over(tmp_path: Path) -> None:
    results = tmp_path / "results"
    store.write_run(_interrupted("20261128T130000Z-finetune_sts-quick-stop"), results)
    assert store.latest_run(results) is None
    assert store.evidence_run(results) is None
    assert store.latest_per_environment(results) == []
    assert store.latest_run(results, include_interrupted=True) is not None
    # a gate's current run, by folder: no finished run there
    assert main(["gate", "--current", str(results), "--results-dir", str(results)]) == 2


def test_a_schema_4_canceled_run_migrates_to_an_interrupted_one() -> None:
    from adrbench.results.record import Interruption

    # GIVEN a run as schema 4 recorded a SIGTERM: canceled scenarios were failed/canceled
    run = _interrupted("20261128T130000Z-finetune_sts-quick-stop")
    data = json.loads(run_to_json(run))
    data["schema_version"] = 4
    data.pop("interrupted")
    for scenario in data["scenarios"]:
        if scenario["status"] == "canceled":
            scenario["status"] = "failed"
            scenario["failure"] = {
                "kind": "canceled",
                "type": "Interrupted",
                "message": scenario["skip"]["message"],
                "stderr_tail": "",
            }
            scenario["skip"] = None
    # WHEN read
    migrated = run_from_json(json.dumps(data), source="old.json")
    # THEN it is the interrupted run with canceled scenarios, measurements as they were
    assert migrated.schema_version == SCHEMA_VERSION
    assert migrated.interrupted == Interruption("SIGTERM")
    assert [r.status for r in migrated.scenarios] == [
        Status.OK,
        Status.OK,
        Status.CANCELED,
        Status.CANCELED,
    ]
    assert migrated == run


def test_a_baseline_refuses_an_interrupted_run(tmp_path: Path) -> None:
    from adrbench.gate.baseline import BaselineError, save_baseline

    with pytest.raises(BaselineError, match=r"interrupted \(SIGTERM\) before every scenario"):
        save_baseline(_interrupted("20261128T130000Z-finetune_sts-quick-stop"), tmp_path)


# --- tracebacks ------------------------------------------------------------------------------


def test_draft_on_a_file_that_is_not_an_adr_is_one_line(
    adr_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    adr_dir = adr_copy
    readme = adr_dir / "README.md"
    code = main(["draft", str(readme), "--adr-dir", str(adr_dir), "--no-probes"])
    assert code == 2
    line = _one_line_error(capsys.readouterr().err, "draft")
    assert f"{readme}: not a numbered ADR in {adr_dir}" in line


def test_draft_names_the_draft_that_exists_not_the_one_it_would_write(
    tmp_path: Path, adr_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the project's ADRs, where 0004 already revisits 0002 and 0005 is the highest number
    adr_dir = adr_copy
    results = tmp_path / "results"
    store.write_run(make_finetune_sts_run(), results)
    args = ["draft", "2", "--adr-dir", str(adr_dir), "--results-dir", str(results)]
    assert main([*args, "--no-probes"]) == 2
    line = _one_line_error(capsys.readouterr().err, "draft")
    assert f"{adr_dir}/0004-revisit-qlora-skipped-for-small-models.md: a draft revisiting" in line
    assert "0006" not in line


def test_estimate_refuses_a_size_beyond_any_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "model_type": "bert",
        "vocab_size": 10**400,
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
        "max_position_embeddings": 512,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    assert main(["estimate", str(path)]) == 2
    line = _one_line_error(capsys.readouterr().err, "estimate")
    assert f"{path}: vocab_size=1000000" in line
    assert "must be a positive integer up to 2**40" in line
    assert len(line) < 300


def test_a_what_if_beyond_float_range_is_refused_not_taken_as_infinity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    store.write_run(make_finetune_sts_run(), results)
    args = ["check", "2", "--adr-dir", str(REPO_ADRS), "--results-dir", str(results)]
    code = main(
        [*args, "--results", "latest", "--no-probes", "--what-if", "model.parameters=1e400"]
    )
    assert code == 2
    line = _one_line_error(capsys.readouterr().err, "check")
    assert "--what-if model.parameters='1e400': '1e400' is too large" in line
    assert "below 1.7e308" in line


# --- misleading messages ---------------------------------------------------------------------


def test_an_adr_with_a_syntax_error_is_not_also_reported_missing(adr_copy: Path) -> None:
    # GIVEN the project's ADRs with a YAML syntax error in 0002, which 0004 supersedes
    adr_dir = adr_copy
    target = adr_dir / "0002-qlora-skipped-for-small-models.md"
    text = target.read_text(encoding="utf-8")
    target.write_text(text.replace("status: accepted", "status: [accepted", 1), encoding="utf-8")
    # WHEN linted
    problems = lint(sorted(adr_dir.glob("0*.md"))).problems
    # THEN 0002's own error is reported, and nothing claims ADR 0002 does not exist
    assert any(p.path == target for p in problems)
    assert not any("does not exist" in p.message for p in problems), problems


def test_a_nygard_superseded_link_is_resolved_by_its_file_at_its_line(tmp_path: Path) -> None:
    # GIVEN an adr-tools record superseded by "[4. Title](0204-file.md)": the text says 4, the
    # link opens 0204, which does not exist
    adr = tmp_path / "0001-use-x.md"
    adr.write_text(
        "# 1. Use X\n\nDate: 2026-11-01\n\n## Status\n\n"
        "Superseded by [4. Use Y](0204-use-y.md)\n\n## Context\n\nWhy.\n",
        encoding="utf-8",
    )
    (tmp_path / "0004-use-y.md").write_text(
        "# 4. Use Y\n\nDate: 2026-11-02\n\n## Status\n\nAccepted\n", encoding="utf-8"
    )
    problems = lint([adr, tmp_path / "0004-use-y.md"]).problems
    # THEN the file decides (0204, missing), reported at the status line (7), not line 1
    assert [(p.line, p.field, p.message.split(" (")[0]) for p in problems] == [
        (7, "status", "ADR 0204 does not exist")
    ]


def test_a_nesting_error_on_a_40kb_line_shows_a_window_not_the_line(tmp_path: Path) -> None:
    adr = tmp_path / "0001-deep.md"
    deep = "[" * 20_000 + "]" * 20_000
    adr.write_text(f"---\nstatus: accepted\nextra: {deep}\n---\n# Deep\n", encoding="utf-8")
    problems = lint([adr]).problems
    assert problems, "the nesting is refused"
    text = "\n".join(str(p) for p in problems)
    assert "nests deeper than" in text
    assert len(text) < 1000
    assert "..." in text  # where the line was cut


# --- the gate's REF side ---------------------------------------------------------------------


def test_the_ref_side_gets_an_absolute_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ADRBENCH_STSB_DIR relative to where the gate is started (as the README sets it)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADRBENCH_STSB_DIR", "../shared/data/stsb")
    # WHEN a side's environment is made (its run starts in its own tree, elsewhere)
    from adrbench.gate.relative import _side_environment

    env = _side_environment(Side("ref", tmp_path / "worktree"))
    # THEN the path still names the same folder
    assert env["ADRBENCH_STSB_DIR"] == str((tmp_path / "../shared/data/stsb").resolve())


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def test_runs_on_the_ref_side_record_refs_commit(tmp_path: Path) -> None:
    # GIVEN a repository with two commits, REF (the first) checked out in a worktree
    repo = tmp_path / "repo"
    (repo / "bench").mkdir(parents=True)
    _git(repo.parent, "init", "-q", str(repo))
    for i in range(2):
        (repo / "bench" / "suite.toml").write_text(f'name = "s"\n# {i}\n', encoding="utf-8")
        _git(repo, "add", "-A")
        _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"c{i}")
    ref_commit = _git(repo, "rev-parse", "HEAD~1")
    tree = tmp_path / "ref"
    _git(repo, "worktree", "add", "-q", "--detach", str(tree), ref_commit)
    # WHEN the working tree's suite is placed for REF's side
    from adrbench.gate.relative import _suite_in

    suite = _suite_in(Side("ref", tree), repo / "bench" / "suite.toml")
    # THEN it lies in REF's tree at the same place, with the working tree's text, so a run of it
    # records REF's commit (and a dirty tree, since the suite differs from REF's own)
    assert suite == tree / "bench" / "suite.toml"
    assert suite.read_text() == (repo / "bench" / "suite.toml").read_text()
    git = capture_git(suite.parent)
    assert git.commit == ref_commit
    assert git.worktree_is_dirty is True
    # AND the current side runs its own file, recording its own commit
    current = _suite_in(Side("current", repo), repo / "bench" / "suite.toml")
    assert current == repo / "bench" / "suite.toml"
    assert capture_git(current.parent).commit == _git(repo, "rev-parse", "HEAD")


# --- run: suite problems before torch --------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "directory", "not-utf8"])
def test_run_reports_a_bad_suite_without_importing_torch(tmp_path: Path, kind: str) -> None:
    suite = tmp_path / "suite.toml"
    if kind == "directory":
        suite.mkdir()
    elif kind == "not-utf8":
        suite.write_bytes(b"\xff\xfe name")
    program = (
        "import sys; from adrbench.cli import main; code = main(sys.argv[1:]); "
        "print('torch' in sys.modules); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, "run", str(suite)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "ADRBENCH_STSB_DIR": str(tmp_path)},
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip() == "False"
    assert _one_line_error(done.stderr, "run").startswith(f"adrbench run: error: {suite}")


# --- the run id in every write ----------------------------------------------------------------


def test_run_path_refuses_an_id_that_leaves_runs(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="cannot name a results file"):
        store.run_path(tmp_path, "../x")
    # a run named on the command line by id likewise (no read outside runs/ either)
    with pytest.raises(ResultsError, match="cannot name a results file"):
        store.resolve_run("../no-such-run-anywhere", tmp_path)


def test_write_run_writes_both_files_or_neither(tmp_path: Path) -> None:
    run = make_finetune_sts_run()
    path = store.write_run(run, tmp_path)
    twin = path.with_name(f"{run.run_id}.benchmark.json")
    assert path.is_file() and twin.is_file()
    # GIVEN the twin of a second run already there (a second writer)
    other = dataclasses.replace(run, run_id="20261128T130000Z-finetune_sts-quick-0002")
    (tmp_path / "runs" / f"{other.run_id}.benchmark.json").write_text("{}", encoding="utf-8")
    # WHEN it is written THEN refused, and its run file is not left behind alone
    with pytest.raises(ResultsError, match="already exists"):
        store.write_run(other, tmp_path)
    assert not (tmp_path / "runs" / f"{other.run_id}.json").exists()
