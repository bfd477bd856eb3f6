"""STS-B loading: a local folder first, then the hub, else one sentence saying what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from adrbench.engine.data import DATA_DIR_ENV, load_stsb
from adrbench.engine.scenario import Scenario
from adrbench.engine.train import plan_batches
from adrbench.errors import UserError
from conftest import write_tiny_stsb


def test_local_folder_loads_with_scores_normalised_and_hashes_recorded(tmp_path: Path) -> None:
    write_tiny_stsb(tmp_path, pairs=10)
    data = load_stsb(tmp_path)
    assert (len(data.train), len(data.dev), len(data.test)) == (10, 10, 10)
    assert all(0.0 <= s <= 1.0 for s in data.train.scores)
    # THEN the source is named without this machine's path (its folder name, outside a root)
    assert data.info.source == tmp_path.name
    assert data.directory == tmp_path.resolve()
    assert load_stsb(tmp_path, root=tmp_path.parent).info.source == tmp_path.name
    assert set(data.info.sha256) == {"train", "dev", "test"}


def test_env_var_is_used_when_no_folder_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tiny_stsb(tmp_path, pairs=5)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert len(load_stsb().dev) == 5


def test_no_data_and_no_hub_gives_one_sentence_saying_how_to_point_at_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as info:
        load_stsb()
    assert str(info.value) == (
        "STS-B data not found: pass --data-dir DIR or set ADRBENCH_STSB_DIR=DIR to a folder with "
        "train.tsv, dev.tsv and test.tsv (header: score, sentence1, sentence2), or install "
        "'adrbench[hub]' and go online to fetch sentence-transformers/stsb"
    )


def test_a_folder_without_the_files_is_named_with_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("score\tsentence1\tsentence2\n")
    with pytest.raises(UserError) as info:
        load_stsb(tmp_path)
    assert str(info.value) == (
        f"--data-dir={str(tmp_path)!r} has no dev.tsv, test.tsv; point it at a folder with "
        "STS-B's train.tsv, dev.tsv and test.tsv (header: score, sentence1, sentence2)"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("7.5\ta\tb", "score 7.5 is outside the STS range 0-5"),
        ("high\ta\tb", "score 'high' is not a number"),
        ("1.0\tonly one", "expected 3 tab-separated fields, got 2"),
    ],
)
def test_a_malformed_row_is_reported_with_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    write_tiny_stsb(tmp_path, pairs=3)
    dev = tmp_path / "dev.tsv"
    dev.write_text(dev.read_text() + line + "\n")
    with pytest.raises(UserError) as info:
        load_stsb(tmp_path)
    assert str(info.value) == f"{dev}:5: {message}"


def test_eval_subset_is_fixed_and_in_file_order(tmp_path: Path) -> None:
    write_tiny_stsb(tmp_path, pairs=40)
    dev = load_stsb(tmp_path).dev
    first, second = dev.sample(10), dev.sample(10)
    assert first == second and len(first) == 10
    positions = [dev.sentence1.index(s) for s in first.sentence1]
    assert positions == sorted(positions)


def test_batches_are_seeded_cover_every_pair_and_length_grouping_cuts_padding() -> None:
    lengths = [(i * 37) % 50 + 5 for i in range(320)]
    scenario = Scenario(name="s", batch_size=16, seed=3)
    plan = plan_batches(320, scenario)
    assert plan == plan_batches(320, scenario)
    assert sorted(i for b in plan for i in b) == list(range(320))

    def padding(batches: list[list[int]]) -> int:
        return sum(
            max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches
        )

    grouped = plan_batches(
        320, Scenario(name="s", batch_size=16, seed=3, batching="length_grouped"), lengths
    )
    assert sorted(i for b in grouped for i in b) == list(range(320))
    assert padding(grouped) < padding(plan) / 4


def test_max_steps_caps_and_epochs_extend_the_plan() -> None:
    assert len(plan_batches(100, Scenario(name="s", batch_size=10, max_steps=4))) == 4
    assert len(plan_batches(100, Scenario(name="s", batch_size=10, epochs=2.5))) == 25
