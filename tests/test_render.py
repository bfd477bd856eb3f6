"""Rendering appendices, evidence blocks and the index from fixed results and verdicts.

Golden files live in tests/data/golden/; regenerate them after an intended change with
``ADRBENCH_UPDATE_GOLDEN=1 pytest tests/test_render.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import jinja2
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from adrbench.decisions.verdicts import AdrVerdicts
from adrbench.engine.scenario import Scenario
from adrbench.reports import render
from adrbench.reports.render import (
    AppendixInput,
    Chart,
    EvidenceRun,
    IndexEntry,
    JudgedAdr,
    combine_verdicts,
    evidence_scenarios,
    format_value,
    plan_reports,
    render_appendix,
    render_evidence_block,
    render_index,
    verdict_line,
)
from adrbench.results.record import FailureKind, RunRecord, ScenarioResult, run_from_json
from factories import (
    LORA_TRAINABLE,
    MINILM_PARAMETERS,
    judged,
    make_adr_verdicts,
    make_environment,
    make_failed,
    make_ok,
    make_run,
    make_skipped,
    make_verdict,
)

GOLDEN = Path(__file__).parent / "data" / "golden"
ADR_LINK = "../0002-qlora-skipped-for-small-models.md"
STEM = "0002-qlora-skipped-for-small-models"
CHARTS = (
    Chart("Training throughput per method", f"{STEM}-throughput.svg"),
    Chart("Peak memory per method", f"{STEM}-memory.svg"),
    Chart("Peak memory against STS-B test Spearman", f"{STEM}-pareto.svg"),
)


def assert_golden(name: str, text: str) -> None:
    """Compare with tests/data/golden/<name>; ADRBENCH_UPDATE_GOLDEN=1 rewrites it instead."""
    path = GOLDEN / name
    if os.environ.get("ADRBENCH_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    assert path.exists(), f"{path} missing; create it with ADRBENCH_UPDATE_GOLDEN=1"
    assert text == path.read_bytes().decode("utf-8")


def cpu_run() -> RunRecord:
    """The CPU CI machine: full and LoRA ran, QLoRA skipped, one scenario failed. Peak RSS as
    measured in the committed run results/runs/20261128T154211Z-finetune_sts-quick-0e34.json:
    LoRA above full on this CPU."""
    return make_run(
        [
            make_ok("full", method="full", noise_cv=0.05, peak_rss_bytes=1_734_586_368),
            make_ok(
                "lora",
                method="lora",
                trainable_parameters=LORA_TRAINABLE,
                total_parameters=MINILM_PARAMETERS + LORA_TRAINABLE,
                step_time_s=0.8,
                noise_cv=0.05,
                seed=1,
                peak_rss_bytes=1_799_573_504,
                test_spearman=0.84,
            ),
            make_skipped("qlora"),
            make_failed(
                "lora_r64",
                FailureKind.OUT_OF_MEMORY,
                message="killed at 7.9 GiB | limit 8 GiB\nsecond line",
                method="lora",
            ),
        ]
    )


def cuda_run() -> RunRecord:
    """The real H200 run (shared/evidence/cuda-h200, copied unchanged): QLoRA ran there, with the
    CUDA allocator's peaks recorded; the failing CPU scenario was not in its suite."""
    path = Path(__file__).parent / "data" / "runs" / "cuda-h200-full.json"
    return run_from_json(path.read_text(encoding="utf-8"), source=path)


def mps_run() -> RunRecord:
    """An Apple-silicon shape (no real MPS run exists yet: these numbers are made up and marked
    so): the MPS sampled peak is recorded, CUDA counters are absent."""

    def on_mps(result: ScenarioResult) -> ScenarioResult:
        assert result.metrics is not None
        memory = replace(result.metrics.memory, mps_sampled_max_allocated_bytes=600_000_000)
        return replace(result, metrics=replace(result.metrics, device="mps", memory=memory))

    return make_run(
        [
            on_mps(make_ok("full", method="full", step_time_s=0.2, seed=4)),
            on_mps(
                make_ok(
                    "lora",
                    method="lora",
                    trainable_parameters=LORA_TRAINABLE,
                    total_parameters=MINILM_PARAMETERS + LORA_TRAINABLE,
                    step_time_s=0.25,
                    seed=5,
                )
            ),
            make_skipped("qlora", message="QLoRA needs CUDA; this machine's device is mps."),
        ],
        run_id="20261128T140000Z-finetune_sts-quick-0003",
        started_at="2026-11-28T14:00:00Z",
        environment=make_environment(
            "mps-m2-16g",
            device_kind="mps",
            device_name="Apple M2",
            mps_available=True,
            cores=8,
            memory_bytes=16 * 2**30,
        ),
    )


def evidence(run: RunRecord, verdicts: AdrVerdicts) -> EvidenceRun:
    return EvidenceRun(run, f"../../results/runs/{run.run_id}.json", verdicts)


def _table(lines: list[str], start: int) -> tuple[list[str], list[list[str]]]:
    """The Markdown table starting at or after ``lines[start]``: header cells and body rows."""
    while not lines[start].startswith("|"):
        start += 1
        if start == len(lines) or lines[start].startswith("#"):
            return [], []  # a section with no table (e.g. "None declared.")
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])  # "\|" is a pipe inside a cell
        rows.append([cell.strip() for cell in cells])
    return rows[0], [r for r in rows[2:]]


# a fact quoted on its own ("…: results.lora.samples_per_s = 24.9 …"), not the right-hand end of
# a computed expression ("results.a.x - results.b.x = -0.019 [...]")
_FACT = re.compile(r"(?:(?<=: )|(?<=, )|^)(results\.(\w+)\.(\w+)) = ([^;,]+?)(?=[;,]|$)")


def _lead(cell: str) -> str:
    """The value a cell or a quote starts with: "1.53 GiB ± 0.01 GiB (n=3)" -> "1.53 GiB"."""
    return cell.split(" ± ")[0].split(" (")[0].split(" [")[0].strip()


def _after(cell: str) -> str:
    return _lead(cell.split("→")[1]) if "→" in cell else _lead(cell)


# metric -> (evidence row, the part of its cell a verdict quotes)
_QUOTED: dict[str, tuple[str, Callable[[str], str]]] = {
    **{field: (label, _lead) for label, field in render._MEMORY_ROWS},
    "peak_memory_bytes": ("Peak memory (device's principal counter)", _lead),
    "samples_per_s": ("Samples/s (mean ± 95% CI, n repetitions)", _lead),
    "trainable_parameters": ("Trainable / total parameters", lambda cell: cell.split()[0]),
    "test_spearman": ("STS-B test Spearman before → after", _after),
    "dev_spearman": ("STS-B dev Spearman before → after", _after),
}


def assert_consistent(text: str) -> None:
    """Every ``results.SCENARIO.METRIC = VALUE`` quoted in a verdict shows the value the evidence
    table of that scenario shows for that metric in the same environment's column."""
    lines = text.splitlines()
    evidence: dict[tuple[str, str, str], str] = {}  # (scenario, row label, column) -> cell
    verdict_start = lines.index("## Verdicts")
    for n, line in enumerate(lines[:verdict_start]):
        if line.startswith("### `"):
            header, body = _table(lines, n)
            for row in body:
                for column, cell in zip(header[1:], row[1:], strict=True):
                    evidence[(line[5:-1], row[0], column)] = cell
    checked = 0
    verdict_end = next(
        (n for n in range(verdict_start + 1, len(lines)) if lines[n].startswith("## ")), len(lines)
    )
    for n, line in enumerate(lines[verdict_start:verdict_end], start=verdict_start):
        if not line.startswith("### "):
            continue
        header, body = _table(lines, n)
        for row in body:
            for column, cell in zip(header[3:], row[3:], strict=True):
                for _, scenario, metric, shown in _FACT.findall(cell):
                    if metric not in _QUOTED:
                        continue
                    label, part = _QUOTED[metric]
                    key = (scenario, label, column)
                    quoted = _lead(shown.strip()).removesuffix(" samples/s")
                    if key not in evidence:  # a column with no run: only "missing" agrees with it
                        assert quoted == "missing", f"{key} is judged but not shown in the evidence"
                        continue
                    # a missing fact is the counter the table shows as not measured
                    expected = "—" if quoted == "missing" else quoted
                    assert part(evidence[key]) == expected, (
                        f"{column}: verdict says {scenario}.{metric} = {shown.strip()}, the "
                        f"evidence table shows {evidence[key]}"
                    )
                    checked += 1
    assert checked > 0, "no verdict quotes a measured value: nothing was cross-checked"


def test_the_consistency_check_catches_a_verdict_that_quotes_another_run() -> None:
    # GIVEN ADR-002 judged on one run but rendered beside another (the old golden's mistake)
    shown = cpu_run()
    other = make_run(
        [make_ok("lora", method="lora", peak_rss_bytes=1_700_000_000), make_skipped("qlora")]
    )
    adr = judged(make_adr_verdicts(), other)
    text = render_appendix(
        AppendixInput(
            adr, ADR_LINK, (evidence(shown, adr),), evidence_scenarios(adr.evidence, []), ()
        )
    )
    # THEN the check names both values
    with pytest.raises(
        AssertionError,
        match=r"verdict says lora\.peak_rss_bytes = 1\.58 GiB .*, the "
        r"evidence table shows 1\.68 GiB",
    ):
        assert_consistent(text)


TWO_ENVIRONMENTS = make_adr_verdicts(
    [
        make_verdict(),
        make_verdict(
            "trigger",
            "cuda",
            text="CUDA hardware available",
            expression="env.cuda_available",
        ),
        make_verdict(
            "claim",
            "qlora-saves-memory",
            text="QLoRA saves accelerator memory against LoRA",
            expression="results.qlora.cuda_max_allocated_bytes < "
            "results.lora.cuda_max_allocated_bytes",
        ),
        make_verdict(
            "premise",
            "no-cuda",
            text="The machine has no CUDA | GPU",
            expression="not env.cuda_available",
        ),
    ],
    evidence=(
        "finetune_sts/full",
        "finetune_sts/lora",
        "finetune_sts/qlora",
        "finetune_sts/lora_r64",
    ),
)


def test_appendix_with_two_environments_side_by_side_matches_golden() -> None:
    # GIVEN the real H200 run and a CPU run with a skipped and a failed scenario, each judged on
    # its own run by the real judge
    cuda, cpu = judged(TWO_ENVIRONMENTS, cuda_run()), judged(TWO_ENVIRONMENTS, cpu_run())
    runs = (evidence(cuda_run(), cuda), evidence(cpu_run(), cpu))
    combined = combine_verdicts([cuda, cpu])
    # WHEN the appendix is rendered
    text = render_appendix(
        AppendixInput(combined, ADR_LINK, runs, evidence_scenarios(cuda.evidence, []), CHARTS)
    )
    # THEN it matches the reviewed golden file, and agrees with itself
    assert_golden("appendix_two_environments.md", text)
    assert_consistent(text)


def test_appendix_with_cuda_and_mps_memory_rows_matches_golden() -> None:
    # GIVEN the H200 run and an MPS-shaped run, judged on their own runs
    cuda, mps = judged(TWO_ENVIRONMENTS, cuda_run()), judged(TWO_ENVIRONMENTS, mps_run())
    runs = (evidence(cuda_run(), cuda), evidence(mps_run(), mps))
    combined = combine_verdicts([cuda, mps])
    # WHEN the appendix is rendered
    text = render_appendix(
        AppendixInput(combined, ADR_LINK, runs, evidence_scenarios(cuda.evidence, []), CHARTS)
    )
    # THEN the CUDA allocator rows and the MPS sampled row show each machine's own counter
    assert_golden("appendix_cuda_mps.md", text)
    assert_consistent(text)
    rows = {" ".join(line.split()) for line in text.splitlines()}
    assert "| Peak memory: CUDA max allocated | 643.61 MiB (n=1) | — |" in rows
    assert "| Peak memory: MPS sampled max | — | 572.20 MiB (n=1) |" in rows


def test_combined_verdict_takes_the_most_pressing_outcome_of_any_environment() -> None:
    # GIVEN one item judged on three machines: fine, unknown, fired
    fine = make_adr_verdicts([make_verdict(outcome="not fired")])
    unknown = make_adr_verdicts([make_verdict(outcome="unknown", reason="no run")])
    fired = make_adr_verdicts([make_verdict(outcome="fired", values={"model.parameters": 7e9})])
    # WHEN combined in different orders
    # THEN fired beats unknown beats fine, with the deciding machine's values
    assert combine_verdicts([fine, unknown, fired]).verdicts == fired.verdicts
    assert combine_verdicts([fine, unknown]).verdicts == unknown.verdicts
    assert combine_verdicts([fine, fine]).verdicts == fine.verdicts


def test_adr_002_appendix_shows_skip_reason_and_current_model_size() -> None:
    # GIVEN ADR-002's verdicts judged on one CPU run where QLoRA was skipped
    adr = judged(make_adr_verdicts(), cpu_run())
    runs = (evidence(cpu_run(), adr),)
    # WHEN the appendix is rendered
    text = render_appendix(
        AppendixInput(adr, ADR_LINK, runs, evidence_scenarios(adr.evidence, []), CHARTS)
    )
    # THEN the skip reason, the 7B trigger at 22.7M and the premise verdict are visible
    assert_golden("appendix_adr_002_cpu.md", text)
    assert_consistent(text)
    assert "skipped: `cuda_unavailable` — QLoRA needs CUDA; this machine's device is cpu." in text
    rows = {" ".join(line.split()) for line in text.splitlines()}
    assert (
        "| `model-size` | Model size ≥ 7B parameters | `model.parameters >= 7B` "
        "| not fired: model.parameters = 22.7M |"
    ) in rows
    assert (
        "| `qlora-needs-cuda` | QLoRA cannot run without CUDA "
        '| `results.qlora.reason == "cuda_unavailable"` '
        "| holds: results.qlora.reason = cuda_unavailable |"
    ) in rows


def test_appendix_without_results_says_how_to_get_them() -> None:
    # GIVEN an ADR with no runs at all
    adr = make_adr_verdicts([make_verdict(outcome="unknown", values={}, reason="no results yet")])
    # WHEN the appendix is rendered
    text = render_appendix(AppendixInput(adr, ADR_LINK, (), (), ()))
    # THEN it says what to run and shows the unknown verdict, not an empty page
    assert_golden("appendix_no_results.md", text)


def test_evidence_block_and_index_match_golden() -> None:
    # GIVEN two ADRs, one holding and one needing attention
    holds = make_adr_verdicts()
    revisit = make_adr_verdicts(
        [make_verdict("claim", "faster", "fails", values={"results.lora.samples_per_s": 21.5})],
        number=1,
        title="LoRA vs full fine-tuning",
        path="adr/0001-lora-vs-full-fine-tuning.md",
    )
    # WHEN the block and the index are rendered
    block = render_evidence_block(holds, "appendix/0002-qlora-skipped-for-small-models.md")
    index = render_index(
        [
            IndexEntry(revisit, "0001-lora-vs-full-fine-tuning.md", "appendix/0001-x.md"),
            IndexEntry(holds, "0002-qlora-skipped-for-small-models.md", "appendix/0002-x.md"),
        ]
    )
    # THEN both match the reviewed golden files
    assert_golden("evidence_block.md", block)
    assert_golden("index_block.md", index)


def test_verdict_line_holds_only_when_everything_was_decided_and_fine() -> None:
    # GIVEN ADR-002's verdicts: triggers not fired, claim and premise hold
    # WHEN summarised
    # THEN it holds, with every count shown
    assert verdict_line(make_adr_verdicts()) == (
        "Holds — 0 triggers fired, 0 claims failed, 0 premises stale, 0 inconclusive, 0 unknown"
    )


def test_verdict_line_with_an_unknown_is_unconfirmed_not_holds() -> None:
    # GIVEN one verdict that could not be decided
    adr = make_adr_verdicts([make_verdict(), make_verdict(outcome="unknown", values={})])
    # WHEN summarised
    # THEN unknown is never shown as fine
    assert verdict_line(adr) == (
        "Unconfirmed — 0 triggers fired, 0 claims failed, 0 premises stale, 0 inconclusive, "
        "1 unknown"
    )


def test_verdict_line_with_a_stale_premise_says_revisit_and_counts_singular() -> None:
    # GIVEN one fired trigger, one stale premise and two unknowns
    adr = make_adr_verdicts(
        [
            make_verdict(outcome="fired"),
            make_verdict("premise", "p", "stale"),
            make_verdict("claim", "c", "unknown"),
            make_verdict("claim", "d", "unknown"),
        ]
    )
    # WHEN summarised
    # THEN it asks to revisit and counts each kind
    assert verdict_line(adr) == (
        "Revisit — 1 trigger fired, 0 claims failed, 1 premise stale, 0 inconclusive, 2 unknown"
    )


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("model.parameters", 22_713_216, "22.7M"),
        ("results.lora.peak_rss_bytes", 1_825_361_920, "1.70 GiB"),
        ("env.memory_bytes", 8 * 2**30, "8.00 GiB"),
        ("results.lora.test_spearman", 0.84712, "0.847"),
        ("results.lora.samples_per_s", 43.21, "43.2 samples/s"),
        ("results.full.train_s", 21.456, "21.46 s"),
        ("env.cuda_available", False, "false"),
        ("results.qlora.skip_reason", "cuda_unavailable", "cuda_unavailable"),
        ("probe.anything", 0.5, "0.5"),
        ("results.qlora.peak_rss_bytes", None, "missing"),
    ],
)
def test_fact_values_are_shown_in_their_unit(name: str, value: object, shown: str) -> None:
    # GIVEN a fact value  WHEN formatted  THEN it reads in the fact's unit
    assert format_value(name, value) == shown


def test_evidence_names_a_scenario_or_a_whole_suite_in_adr_order() -> None:
    # GIVEN a run of suite finetune_sts with four scenarios
    run = cpu_run()
    # WHEN evidence entries are resolved
    # THEN suite/scenario names one scenario (kept even if missing), a suite names all of its
    assert evidence_scenarios(["finetune_sts/lora", "finetune_sts/missing"], [run]) == (
        "lora",
        "missing",
    )
    assert evidence_scenarios(["finetune_sts/qlora", "finetune_sts"], [run]) == (
        "qlora",
        "full",
        "lora",
        "lora_r64",
    )
    assert evidence_scenarios(["other_suite"], [run]) == ()


def test_template_value_missing_fails_the_render_instead_of_printing_nothing() -> None:
    # GIVEN the appendix template and a context without the verdict headline
    # WHEN rendered
    # THEN jinja2's StrictUndefined stops it
    with pytest.raises(jinja2.UndefinedError, match="'headline' is undefined"):
        render._ENV.get_template("evidence_block.md.j2").render(appendix_link="x.md")


def test_columns_with_different_scenario_settings_are_marked_not_comparable() -> None:
    # GIVEN the same scenario name run with 40 steps on one machine and 360 on another
    quick = make_run([make_ok("lora", method="lora", steps=40)])
    other = make_environment("cuda-box", device_name="H100")
    full_scenario = Scenario(name="lora", method="lora", max_steps=360)
    full = make_run([make_ok("lora", scenario=full_scenario)], environment=other)
    adr = make_adr_verdicts([])
    runs = (evidence(quick, adr), evidence(full, adr))
    # WHEN the appendix is rendered
    text = render_appendix(AppendixInput(adr, ADR_LINK, runs, ("lora",), ()))
    # THEN a row shows both configuration fingerprints and says they are not comparable
    a, b = quick.scenarios[0].fingerprint[:12], full_scenario.fingerprint()[:12]
    assert a != b
    assert f"| Config fingerprint (differs: not comparable) | `{a}` | `{b}` |" in {
        " ".join(line.split()) for line in text.splitlines()
    }


@settings(max_examples=50, deadline=None)
@given(before=st.text(max_size=80), after=st.text(max_size=80))
def test_adr_text_around_the_block_survives_plan_reports(before: str, after: str) -> None:
    # GIVEN an ADR file with arbitrary text around an existing evidence block
    assume(not any(line.strip().startswith("<!-- ") for line in (before + after).splitlines()))
    head = before if before.endswith(("\n", "\r")) or not before else before + "\n"
    original = f"{head}<!-- adrbench:evidence -->\nold\n<!-- /adrbench:evidence -->\n{after}"
    with tempfile.TemporaryDirectory() as tmp:
        adr_dir = Path(tmp) / "adr"
        adr_dir.mkdir()
        path = adr_dir / "0002-qlora-skipped-for-small-models.md"
        path.write_bytes(original.encode("utf-8"))
        judged = JudgedAdr(make_adr_verdicts(path=str(path)), ())
        # WHEN the report files are planned
        outputs = plan_reports([judged], adr_dir, Path(tmp) / "results")
    # THEN the ADR's new text differs from the old only between the markers
    new = outputs[path].decode("utf-8")
    assert new.startswith(f"{head}<!-- adrbench:evidence -->\n**Evidence** ([appendix](")
    assert new.endswith(f"\n<!-- /adrbench:evidence -->\n{after}")


@pytest.mark.parametrize(
    "appendix",
    sorted((Path(__file__).parents[1] / "adr" / "appendix").glob("*.md")),
    ids=lambda path: path.name,
)
def test_every_committed_appendix_agrees_with_itself(appendix: Path) -> None:
    text = appendix.read_text(encoding="utf-8")
    if "## Verdicts" not in text or "results." not in text.split("## Verdicts")[1]:
        pytest.skip(f"{appendix.name} quotes no measured value in its verdicts")
    if "No results yet" in text.split("## Verdicts")[0]:
        pytest.skip(f"{appendix.name} has no run yet: its verdicts quote only missing facts")
    assert_consistent(text)
