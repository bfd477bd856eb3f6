"""``adrbench report`` end to end on small ADRs and factory results in a temporary directory.

Probes are off (``--no-probes``): they run bitsandbytes in a child process, which is the
decisions layer's to test; here premises on probes are simply unknown.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adrbench.cli import main
from adrbench.results.record import RunRecord
from adrbench.results.store import write_run
from factories import make_environment, make_ok, make_run, make_skipped

ADR_002 = """\
---
status: accepted
date: 2026-02-20
evidence: [finetune_sts/lora, finetune_sts/qlora]
claims:
  - id: qlora-skipped
    text: QLoRA is not run on this hardware
    holds_if: results.qlora.status == "skipped"
revisit_when:
  - id: model-7b
    text: The model reaches 7B parameters
    fires_if: model.parameters >= 7B
  - id: cuda
    text: CUDA hardware is available
    fires_if: env.cuda_available
premises:
  - id: bnb-needs-cuda
    text: bitsandbytes 4-bit quantization needs CUDA
    holds_if: not probes.bnb_nf4_on_cpu
---

# Skip QLoRA for small models

Hand-written prose, kept byte for byte.\r
No final newline here"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ADR directory with ADR-0002 and a results directory with one CPU run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adr").mkdir()
    (tmp_path / "adr" / "0002-qlora-skipped-for-small-models.md").write_bytes(
        ADR_002.encode("utf-8")
    )
    write_run(cpu_run(), tmp_path / "results")
    return tmp_path


def cpu_run() -> RunRecord:
    return make_run()  # full, lora ok; qlora skipped with cuda_unavailable


def report(*extra: str) -> int:
    return main(["report", "--adr-dir", "adr", "--results-dir", "results", "--no-probes", *extra])


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def normalized_rows(text: str) -> set[str]:
    return {" ".join(line.split()) for line in text.splitlines()}


def test_report_renders_adr_002_evidence_and_links_it(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN ADR-0002 and a CPU run where QLoRA was skipped
    # WHEN reports are generated
    code = report()
    # THEN the appendix shows the skip reason, both triggers not fired (7B at 22.7M), the premise
    appendix = (workspace / "adr/appendix/0002-qlora-skipped-for-small-models.md").read_text()
    rows = normalized_rows(appendix)
    assert code == 0
    assert (
        "| Status | skipped: `cuda_unavailable` — QLoRA needs CUDA; this machine's device is cpu. |"
    ) in rows
    assert (
        "| `model-7b` | The model reaches 7B parameters | `model.parameters >= 7B` "
        "| not fired: model.parameters = 22.7M |"
    ) in rows
    assert (
        "| `cuda` | CUDA hardware is available | `env.cuda_available` "
        "| not fired: env.cuda_available = false |"
    ) in rows
    assert (
        "| `bnb-needs-cuda` | bitsandbytes 4-bit quantization needs CUDA "
        "| `not probes.bnb_nf4_on_cpu` | **unknown**: probes.bnb_nf4_on_cpu = missing; "
        "probes.bnb_nf4_on_cpu: probes were not run (--no-probes) |"
    ) in rows
    # AND the ADR links to it, in a block appended after the untouched original text
    adr = (workspace / "adr/0002-qlora-skipped-for-small-models.md").read_bytes().decode()
    assert adr == (
        ADR_002 + "\n\n<!-- adrbench:evidence -->\n"
        "**Evidence** ([appendix](appendix/0002-qlora-skipped-for-small-models.md), regenerated "
        "by `adrbench report`): Unconfirmed — 0 triggers fired, 0 claims failed, "
        "0 premises stale, 0 inconclusive, 1 unknown\n"
        "<!-- /adrbench:evidence -->\n"
    )
    # AND the index lists it, and every written file was named
    index = (workspace / "adr/README.md").read_text()
    assert (
        "| 0002 | [Skip QLoRA for small models](0002-qlora-skipped-for-small-models.md) "
        "| accepted | Unconfirmed — 0 triggers fired, 0 claims failed, 0 premises stale, "
        "0 inconclusive, 1 unknown | [evidence](appendix/0002-qlora-skipped-for-small-models.md) |"
    ) in normalized_rows(index)
    assert capsys.readouterr().out == (
        "wrote adr/appendix/0002-qlora-skipped-for-small-models-throughput.svg\n"
        "wrote adr/appendix/0002-qlora-skipped-for-small-models-memory.svg\n"
        "wrote adr/appendix/0002-qlora-skipped-for-small-models-pareto.svg\n"
        "wrote adr/appendix/0002-qlora-skipped-for-small-models.md\n"
        "wrote adr/0002-qlora-skipped-for-small-models.md\n"
        "wrote adr/README.md\n"
    )


def test_second_run_on_the_same_results_changes_no_byte(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN reports generated once
    assert report() == 0
    before = snapshot(workspace)
    capsys.readouterr()
    # WHEN generated again, and checked
    again = report()
    check = report("--check")
    # THEN nothing is written and the check passes
    assert (again, check) == (0, 0)
    assert snapshot(workspace) == before
    assert capsys.readouterr().out == (
        "reports are up to date; nothing written\nreports are up to date\n"
    )


def test_check_exits_1_naming_stale_files_and_writes_nothing(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN current reports, then a newer run of the same machine where LoRA got faster
    assert report() == 0
    newer = make_run(
        [make_ok("lora", method="lora", step_time_s=0.35), make_skipped("qlora")],
        run_id="20261128T140000Z-finetune_sts-quick-0002",
        started_at="2026-11-28T14:00:00Z",
    )
    write_run(newer, workspace / "results")
    before = snapshot(workspace)
    capsys.readouterr()
    # WHEN checked
    code = report("--check")
    # THEN it exits 1, names what regenerating would change (memory and accuracy did not, so
    # those charts are current), and writes nothing
    assert code == 1
    assert capsys.readouterr().out == (
        "2 report file(s) are out of date; run `adrbench report`:\n"
        "  adr/appendix/0002-qlora-skipped-for-small-models-throughput.svg\n"
        "  adr/appendix/0002-qlora-skipped-for-small-models.md\n"
    )
    assert snapshot(workspace) == before


def test_two_environments_are_shown_side_by_side_latest_run_each(workspace: Path) -> None:
    # GIVEN an older and a newer run on a CUDA box besides the CPU run
    cuda = make_environment("cuda-box", device_kind="cuda", device_name="H100", cuda_available=True)
    for stamp, step in (("20261128T100000Z", 0.2), ("20261128T110000Z", 0.05)):
        run = make_run(
            [make_ok("lora", method="lora", step_time_s=step), make_ok("qlora", method="qlora")],
            run_id=f"{stamp}-finetune_sts-quick-0001",
            environment=cuda,
        )
        write_run(run, workspace / "results")
    # WHEN reports are generated
    assert report() == 0
    # THEN each environment has one column, from its latest run, and the CUDA trigger fired there
    appendix = (workspace / "adr/appendix/0002-qlora-skipped-for-small-models.md").read_text()
    rows = normalized_rows(appendix)
    assert "| | cpu · cpu-2core-24g | H100 · cuda-box |" in rows
    assert (
        "| Run id | `20261128T120000Z-finetune_sts-quick-0001` "
        "| `20261128T110000Z-finetune_sts-quick-0001` |"
    ) in rows
    assert (
        "| `cuda` | CUDA hardware is available | `env.cuda_available` "
        "| not fired: env.cuda_available = false | **fired**: env.cuda_available = true |"
    ) in rows
    assert (
        "**Revisit — 1 trigger fired, 1 claim failed, 0 premises stale, 0 inconclusive, 1 unknown**"
        in rows
    )


def test_missing_adr_directory_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a directory without adr/
    monkeypatch.chdir(tmp_path)
    # WHEN reports are generated
    code = report()
    # THEN it exits 2 with one line naming the directory and the fix
    assert code == 2
    assert capsys.readouterr().err == (
        "adrbench report: error: adr: no such ADR directory; pass --adr-dir or create it\n"
    )


def test_appendix_files_no_longer_generated_are_flagged_then_removed(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN current reports and the appendix of an ADR that was since renamed
    assert report() == 0
    orphan = workspace / "adr/appendix/0009-renamed.md"
    orphan.write_text("old\n")
    capsys.readouterr()
    # WHEN checked, then regenerated
    check = report("--check")
    checked = capsys.readouterr().out
    regenerate = report()
    # THEN the check names it and regenerating removes it
    assert (check, regenerate) == (1, 0)
    assert checked == (
        "1 report file(s) are out of date; run `adrbench report`:\n  adr/appendix/0009-renamed.md\n"
    )
    assert capsys.readouterr().out == (
        "removed adr/appendix/0009-renamed.md (no longer generated)\n"
    )
    assert not orphan.exists()
