"""The relative gate: REF checked out into a worktree, both sides interleaved, judged in pairs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from adrbench.gate.relative import (
    RelativeGateError,
    Side,
    checkout,
    interleaved_order,
    measure_pairs,
    resolve_ref,
    subprocess_runner,
)
from adrbench.gate.rules import (
    DEFAULT_CONFIG,
    GateInputError,
    StepTimeRule,
    Verdict,
    evaluate,
    evaluate_paired,
    for_relative,
)
from adrbench.results.record import RunRecord
from factories import make_environment, make_run
from test_gate import BASE_TIMES, scaled, timed

ROOT = Path(__file__).resolve().parent.parent


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with two commits: ``marker`` says ``one`` at HEAD~1 and ``two`` at HEAD."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "--quiet", "--initial-branch=main")
    (root / "marker").write_text("one\n")
    _git(root, "add", "marker")
    _git(root, "commit", "--quiet", "-m", "one")
    (root / "marker").write_text("two\n")
    _git(root, "commit", "--quiet", "-am", "two")
    return root


def test_interleaving_is_counterbalanced() -> None:
    assert interleaved_order(3) == [
        ("ref", 0),
        ("current", 0),
        ("current", 1),
        ("ref", 1),
        ("ref", 2),
        ("current", 2),
    ]


def test_ref_is_checked_out_in_a_worktree_and_removed(repo: Path) -> None:
    ref = resolve_ref("HEAD~1", repo)
    assert ref.commit == _git(repo, "rev-parse", "HEAD~1")
    with checkout(repo, ref.commit) as tree:
        assert (tree / "marker").read_text() == "one\n"
        assert (repo / "marker").read_text() == "two\n"  # the working tree is untouched
        assert str(tree) in _git(repo, "worktree", "list")
    assert not tree.exists()
    assert str(tree) not in _git(repo, "worktree", "list")


def test_unknown_ref_is_refused_naming_it(repo: Path) -> None:
    with pytest.raises(RelativeGateError, match=r"--against no-such-branch: 'no-such-branch'"):
        resolve_ref("no-such-branch", repo)


def test_baseline_ref_without_a_baseline_is_refused(repo: Path) -> None:
    with pytest.raises(RelativeGateError, match=r"no committed baseline.*--against HEAD~1"):
        resolve_ref("@baseline", repo, baseline_commit=None)
    head = _git(repo, "rev-parse", "HEAD")
    assert resolve_ref("@baseline", repo, baseline_commit=head).commit == head


def test_outside_a_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RelativeGateError, match="not a git repository"):
        resolve_ref("HEAD", tmp_path)


def _fake_run(label: str, index: int, factor: float, anon: int) -> RunRecord:
    result = timed(times=scaled(factor))
    assert result.metrics is not None
    memory = replace(result.metrics.memory, train_peak_anon_rss_bytes=anon)
    result = replace(result, metrics=replace(result.metrics, memory=memory))
    return replace(make_run([result]), run_id=f"{label}-{index + 1}")


def test_sides_run_interleaved_with_their_own_trees(tmp_path: Path) -> None:
    calls: list[tuple[str, int, Path, Path, tuple[str, ...]]] = []

    def fake(side: Side, index: int, results_dir: Path) -> RunRecord:
        calls.append((side.label, index, side.root, results_dir, side.sets))
        return _fake_run(side.label, index, 1.0, 1_000_000_000)

    ref_tree, cur_tree = tmp_path / "ref", tmp_path / "cur"
    refs, currents = measure_pairs(
        Side("ref", ref_tree),
        Side("current", cur_tree, ("extra_step_work=0.15",)),
        2,
        fake,
        tmp_path / "work",
        log=lambda line: None,
    )
    assert [(c[0], c[1]) for c in calls] == interleaved_order(2)
    assert {c[2] for c in calls if c[0] == "ref"} == {ref_tree}
    assert {c[4] for c in calls if c[0] == "current"} == {("extra_step_work=0.15",)}
    assert calls[0][3] == tmp_path / "work" / "ref-1"
    assert [r.run_id for r in refs] == ["ref-1", "ref-2"]  # pair i is ref i with current i
    assert [r.run_id for r in currents] == ["current-1", "current-2"]


def test_one_process_a_side_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RelativeGateError, match="at least 2 processes a side"):
        measure_pairs(Side("ref", tmp_path), Side("current", tmp_path), 1, _never, tmp_path)


def _never(side: Side, index: int, results_dir: Path) -> RunRecord:
    raise AssertionError("must not run")


def _rows(report_rows: object, metric: str) -> list[Verdict]:
    return [r.verdict for r in report_rows if r.metric == metric]  # type: ignore[attr-defined]


def test_a_regression_in_every_pair_fails_with_the_pair_count() -> None:
    refs = [_fake_run("ref", i, 1.0, 1_000_000_000) for i in range(2)]
    slower = [_fake_run("cur", i, 1.15, 1_000_000_000) for i in range(2)]
    report = evaluate_paired(refs, slower, DEFAULT_CONFIG, baseline_source="REF")
    assert _rows(report.rows, "step_time_s") == [Verdict.REGRESSION]
    (failure,) = report.failures
    assert "mean of 2 interleaved pairs" in (failure.message or "")
    assert report.pairs == 2


def test_pairs_that_disagree_widen_the_interval() -> None:
    # Pair 1 reads -10%, pair 2 +30%: the mean (+8.2%) is beyond the threshold, and the noise
    # model alone (2% a process) would call it significant; pooled with the spread seen between
    # the pairs, it is not.
    refs = [_fake_run("ref", i, 1.0, 1_000_000_000) for i in range(2)]
    currents = [_fake_run("cur", 0, 0.90, 1_000_000_000), _fake_run("cur", 1, 1.30, 1_000_000_000)]
    report = evaluate_paired(refs, currents, DEFAULT_CONFIG, baseline_source="REF")
    (row,) = [r for r in report.rows if r.metric == "step_time_s"]
    assert row.change == "+8.2%"
    assert row.verdict is Verdict.PASS
    assert row.p_value is not None and 0.01 < row.p_value < 0.2


def test_one_pair_cannot_swamp_the_noise_model() -> None:
    # Two pairs agreeing exactly (+15% and +15%) have no spread; the model's variance still
    # counts, so the p-value is finite, and the change fails.
    refs = [_fake_run("ref", i, 1.0, 1_000_000_000) for i in range(2)]
    slower = [_fake_run("cur", i, 1.15, 1_000_000_000) for i in range(2)]
    report = evaluate_paired(refs, slower, DEFAULT_CONFIG, baseline_source="REF")
    (row,) = [r for r in report.rows if r.metric == "step_time_s"]
    assert row.verdict is Verdict.REGRESSION
    assert row.p_value is not None and row.p_value > 0


def test_anonymous_memory_rise_fails() -> None:
    config = replace(
        DEFAULT_CONFIG,
        rules=tuple(
            replace(rule, metric="train_peak_anon_rss_bytes")  # type: ignore[type-var]
            if getattr(rule, "metric", None) == "peak_rss_bytes"
            else rule
            for rule in DEFAULT_CONFIG.rules
        ),
    )
    refs = [_fake_run("ref", i, 1.0, 1_000_000_000) for i in range(2)]
    hungrier = [_fake_run("cur", i, 1.0, 1_100_000_000) for i in range(2)]
    report = evaluate_paired(refs, hungrier, config, baseline_source="REF")
    assert _rows(report.rows, "train_peak_anon_rss_bytes") == [Verdict.REGRESSION]


def test_one_pair_judges_exactly_as_the_committed_mode() -> None:
    base = make_run([timed(times=BASE_TIMES)])
    slower = make_run([timed(times=scaled(1.12))])
    paired = evaluate_paired([base], [slower], DEFAULT_CONFIG, baseline_source="b")
    committed = evaluate(base, slower, DEFAULT_CONFIG, baseline_source="b")
    assert paired.rows == committed.rows


def test_no_scenario_in_common_is_refused() -> None:
    refs = [make_run([timed("full")]) for _ in range(2)]
    currents = [make_run([timed("lora")]) for _ in range(2)]
    with pytest.raises(GateInputError, match="no scenario in common"):
        evaluate_paired(refs, currents, DEFAULT_CONFIG, baseline_source="REF")


def test_unequal_sides_are_refused() -> None:
    with pytest.raises(GateInputError, match="in pairs"):
        evaluate_paired(
            [make_run([timed()])], [make_run([timed()])] * 2, DEFAULT_CONFIG, baseline_source="R"
        )


def test_committed_baseline_from_another_boot_is_said() -> None:
    base = make_run([timed()], environment=make_environment(boot_id="aaaa-1111"))
    same = make_run([timed()], environment=make_environment(boot_id="aaaa-1111"))
    other = make_run([timed()], environment=make_environment(boot_id="bbbb-2222"))
    assert evaluate(base, same, DEFAULT_CONFIG, baseline_source="b").notes == ()
    (note,) = evaluate(base, other, DEFAULT_CONFIG, baseline_source="b").notes
    assert "another boot (aaaa-111)" in note and "--against REF" in note


def _fake_adrbench(tree: Path, body: str) -> None:
    package = tree / "src" / "adrbench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text(textwrap.dedent(body))


def test_a_ref_whose_code_cannot_load_the_suite_is_refused(tmp_path: Path) -> None:
    # REF's own code runs (PYTHONPATH puts its src/ first) and fails the way an old adrbench
    # fails on a suite field it does not know: exit 2 with its error on stderr.
    tree = tmp_path / "ref"
    _fake_adrbench(
        tree,
        """
        import sys
        def main():
            print("adrbench run: error: suite.toml: unknown field 'pretokenize'", file=sys.stderr)
            return 2
        """,
    )
    runner = subprocess_runner(ROOT / "bench" / "gate_calibration.toml", "quick")
    with pytest.raises(RelativeGateError) as error:
        runner(Side("ref", tree), 0, tmp_path / "runs")
    message = str(error.value)
    assert "ref side" in message and "exit 2" in message
    assert "unknown field 'pretokenize'" in message
    assert "gate against a newer REF" in message
    assert (tmp_path / "runs" / "adrbench-run.log").is_file()  # the side's whole output is kept


def test_the_side_runs_its_own_code_with_the_suite_and_overrides(tmp_path: Path) -> None:
    tree = tmp_path / "cur"
    argv_file = tmp_path / "argv.txt"
    _fake_adrbench(
        tree,
        f"""
        import sys
        def main():
            import adrbench
            open({str(argv_file)!r}, "w").write(adrbench.__file__ + "\\n" + "\\n".join(sys.argv))
            return 2
        """,
    )
    runner = subprocess_runner(
        ROOT / "bench" / "gate_calibration.toml", "quick", only=("full",), sets=("seed=1",)
    )
    with pytest.raises(RelativeGateError):
        runner(Side("current", tree, ("ballast_mb=10",)), 0, tmp_path / "runs")
    lines = argv_file.read_text().splitlines()
    assert lines[0].startswith(str(tree / "src"))
    argv = lines[1:]
    # the working tree's suite, placed where it lies in the side's own tree (so the run records
    # that tree's commit), with the same text
    suite = tree / "bench" / "gate_calibration.toml"
    assert argv[1:4] == ["run", str(suite), "--profile"]
    assert suite.read_text() == (ROOT / "bench" / "gate_calibration.toml").read_text()
    assert argv[argv.index("--only") : argv.index("--only") + 2] == ["--only", "full"]
    sets = [argv[i + 1] for i, word in enumerate(argv) if word == "--set"]
    assert sets == ["seed=1", "ballast_mb=10"]


def test_cli_refuses_an_unknown_ref(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from adrbench.cli import main; sys.exit(main())",
            "gate",
            "--against",
            "no-such-ref-anywhere",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "no-such-ref-anywhere" in done.stderr
    assert done.stderr.count("\n") == 1  # one clear line


def test_the_relative_mode_compares_raw_step_times() -> None:
    # A REF process whose kernel calibration was disturbed (10% slower matmul) must not shift
    # the time comparison: both sides ran on the same machine, interleaved.
    ref = [make_run([timed(flops=0.9e11)]), make_run([timed()])]
    cur = [make_run([timed()]), make_run([timed()])]
    normalised = evaluate_paired(ref, cur, DEFAULT_CONFIG, baseline_source="REF")
    raw = evaluate_paired(ref, cur, for_relative(DEFAULT_CONFIG), baseline_source="REF")
    assert next(r for r in normalised.rows if r.metric == "step_time_s").change == "+5.4%"
    assert next(r for r in raw.rows if r.metric == "step_time_s").change == "+0.0%"
    (time_rule,) = [r for r in for_relative(DEFAULT_CONFIG).rules if isinstance(r, StepTimeRule)]
    assert "raw" in time_rule.describe()


def test_a_scenario_ref_resolves_differently_is_compared_with_a_note() -> None:
    refs = [make_run([timed()]) for _ in range(2)]
    other = replace(timed(), fingerprint="0123456789abcdef")
    currents = [make_run([other]) for _ in range(2)]
    relative = evaluate_paired(refs, currents, DEFAULT_CONFIG, baseline_source="REF")
    first = relative.rows[0]
    assert first.verdict is Verdict.PASS and first.metric == "step_time_s"
    assert first.message is not None and "resolve the same suite entry differently" in first.message
    committed = evaluate_paired(
        refs[:1], currents[:1], DEFAULT_CONFIG, baseline_source="b", relative=False
    )
    assert [r.verdict for r in committed.rows] == [Verdict.NOT_COMPARABLE]
