"""Rendering appendices, evidence blocks and the index from fixed results and verdicts.

Golden files live in tests/data/golden/; regenerate them after an intended change with
``ADRBENCH_UPDATE_GOLDEN=1 pytest tests/test_render.py`` and review the diff.
"""

from __future__ import annotations

import os
import tempfile
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
from adrbench.results.record import FailureKind, RunRecord
from factories import (
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
    """The CPU CI machine: full and LoRA ran, QLoRA skipped, one scenario failed."""
    return make_run(
        [
            make_ok("full", method="full", noise_cv=0.05, peak_rss_bytes=1_900_000_000),
            make_ok(
                "lora",
                method="lora",
                trainable_parameters=294_912,
                step_time_s=0.5,
                noise_cv=0.05,
                seed=1,
                peak_rss_bytes=1_500_000_000,
                test_spearman=0.84,
            ),
            make_skipped("qlora"),
            make_failed(
                "lora_r64",
                FailureKind.OUT_OF_MEMORY,
                message="killed at 7.9 GiB | limit 8 GiB\nsecond line",
            ),
        ]
    )


def cuda_run() -> RunRecord:
    """A CUDA box, a later run: QLoRA ran here, the failing scenario was not in its suite."""
    return make_run(
        [
            make_ok("full", method="full", step_time_s=0.05, noise_cv=0.1, seed=2),
            make_ok(
                "lora",
                method="lora",
                trainable_parameters=294_912,
                step_time_s=0.04,
                noise_cv=0.1,
                seed=3,
            ),
            make_ok("qlora", method="qlora", trainable_parameters=294_912, step_time_s=0.06),
        ],
        run_id="20261128T130000Z-finetune_sts-quick-0002",
        started_at="2026-11-28T13:00:00Z",
        environment=make_environment(
            "cuda-1xh100-80g",
            device_kind="cuda",
            device_name="NVIDIA H100 80GB HBM3",
            cuda_available=True,
            cores=32,
        ),
    )


def evidence(run: RunRecord, verdicts: AdrVerdicts) -> EvidenceRun:
    return EvidenceRun(run, f"../../results/runs/{run.run_id}.json", verdicts)


def test_appendix_with_two_environments_side_by_side_matches_golden() -> None:
    # GIVEN a CUDA run and a CPU run with a skipped and a failed scenario, each judged on its own
    def judged(on_cuda: bool) -> AdrVerdicts:
        return make_adr_verdicts(
            [
                make_verdict(),
                make_verdict(
                    "trigger",
                    "cuda",
                    "fired" if on_cuda else "not fired",
                    text="CUDA hardware available",
                    expression="env.cuda_available",
                    values={"env.cuda_available": on_cuda},
                ),
                make_verdict(
                    "claim",
                    "qlora-saves-memory",
                    "holds" if on_cuda else "unknown",
                    text="QLoRA saves memory against LoRA",
                    expression="results.qlora.peak_rss_bytes < results.lora.peak_rss_bytes",
                    values={
                        "results.lora.peak_rss_bytes": 1_700_000_000,
                        "results.qlora.peak_rss_bytes": 1_600_000_000 if on_cuda else None,
                    },
                    reason=None if on_cuda else "results.qlora is skipped (cuda_unavailable)",
                ),
                make_verdict(
                    "premise",
                    "small-model",
                    "stale",
                    text="The model is small | tiny",
                    expression="model.parameters < 100M",
                    values={"model.parameters": 350_000_000},
                ),
            ],
            evidence=(
                "finetune_sts/full",
                "finetune_sts/lora",
                "finetune_sts/qlora",
                "finetune_sts/lora_r64",
            ),
        )

    cuda, cpu = judged(on_cuda=True), judged(on_cuda=False)
    runs = (evidence(cuda_run(), cuda), evidence(cpu_run(), cpu))
    combined = combine_verdicts([cuda, cpu])
    # WHEN the appendix is rendered
    text = render_appendix(
        AppendixInput(combined, ADR_LINK, runs, evidence_scenarios(cuda.evidence, []), CHARTS)
    )
    # THEN it matches the reviewed golden file
    assert_golden("appendix_two_environments.md", text)


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
    # GIVEN ADR-002's verdicts and one CPU run where QLoRA was skipped
    adr = make_adr_verdicts()
    runs = (evidence(cpu_run(), adr),)
    # WHEN the appendix is rendered
    text = render_appendix(
        AppendixInput(adr, ADR_LINK, runs, evidence_scenarios(adr.evidence, []), CHARTS)
    )
    # THEN the skip reason, the 7B trigger at 22.7M and the premise verdict are visible
    assert_golden("appendix_adr_002_cpu.md", text)
    assert "skipped: `cuda_unavailable` — QLoRA needs CUDA; this machine's device is cpu." in text
    rows = {" ".join(line.split()) for line in text.splitlines()}
    assert (
        "| `model-size` | Model size ≥ 7B parameters | `model.parameters >= 7B` "
        "| not fired: model.parameters = 22.7M |"
    ) in rows
    assert (
        "| `qlora-needs-cuda` | QLoRA cannot run without CUDA "
        '| `results.qlora.skip_reason == "cuda_unavailable"` '
        "| holds: results.qlora.skip_reason = cuda_unavailable |"
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
        "Holds — 0 triggers fired, 0 claims failed, 0 premises stale, 0 unknown"
    )


def test_verdict_line_with_an_unknown_is_unconfirmed_not_holds() -> None:
    # GIVEN one verdict that could not be decided
    adr = make_adr_verdicts([make_verdict(), make_verdict(outcome="unknown", values={})])
    # WHEN summarised
    # THEN unknown is never shown as fine
    assert verdict_line(adr) == (
        "Unconfirmed — 0 triggers fired, 0 claims failed, 0 premises stale, 1 unknown"
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
        "Revisit — 1 trigger fired, 0 claims failed, 1 premise stale, 2 unknown"
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
