"""``adrbench draft ADR``: a proposed record superseding one whose trigger fired."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adrbench.cli import main
from adrbench.decisions.adr import parse_adr
from adrbench.results import store
from factories import make_environment, make_finetune_sts_run

REPO_ADRS = Path(__file__).parents[1] / "adr"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """The project's ADRs (without generated appendices) and a CUDA machine's run."""
    adr_dir = tmp_path / "adr"
    adr_dir.mkdir()
    for path in REPO_ADRS.glob("000[123]-*.md"):
        shutil.copy(path, adr_dir / path.name)
    results = tmp_path / "results"
    cuda = make_environment("cuda-box", device_kind="cuda", device_name="H200", cuda_available=True)
    store.write_run(make_finetune_sts_run(environment=cuda), results)
    return adr_dir, results


def draft(adr_dir: Path, results: Path, adr: str) -> int:
    args = ["draft", adr, "--adr-dir", str(adr_dir), "--results-dir", str(results)]
    return main([*args, "--no-probes"])


def test_a_fired_trigger_gives_a_proposed_superseding_draft(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    adr_dir, results = dirs
    # GIVEN ADR-0002, whose cuda trigger fires on the CUDA machine's run WHEN drafted
    assert draft(adr_dir, results, "2") == 0
    target = adr_dir / "0004-revisit-qlora-skipped-for-small-models.md"
    assert capsys.readouterr().out == (
        f"wrote {target} (proposed, supersedes ADR-0002; fired: cuda)\n"
    )
    # THEN a valid MADR record, proposed, superseding ADR-0002, citing the environment and run
    adr = parse_adr(target)
    assert (adr.status, adr.supersedes, adr.evidence) == (
        "proposed",
        (2,),
        ("finetune_sts/lora", "finetune_sts/qlora", "serve_adapters"),
    )
    text = target.read_text(encoding="utf-8")
    assert "### Where it fired: environment cuda-box (cuda, H200)" in text
    assert "* Trigger `cuda` fired: CUDA hardware is available" in text
    assert "Run `20261128T120000Z-finetune_sts-quick-0001`" in text
    assert "* QLoRA (NF4 base weights + LoRA adapters)" in text  # the old options, to weigh
    assert "TODO" in text  # left for a person to finish
    assert main(["lint", "--adr-dir", str(adr_dir)]) == 0
    # AND a second draft of the same ADR is refused
    assert draft(adr_dir, results, "2") == 2


def test_no_fired_trigger_is_refused(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    adr_dir, results = dirs
    assert draft(adr_dir, results, "3") == 2
    assert "none of its revisit triggers fired" in capsys.readouterr().err
