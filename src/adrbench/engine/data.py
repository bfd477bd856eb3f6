"""STS-B pairs: from a local directory first, the HF hub for online users, else one clear error.

A local directory holds ``train.tsv``, ``dev.tsv`` and ``test.tsv`` with the header
``score<TAB>sentence1<TAB>sentence2`` and gold scores on the original 0-5 scale. Scores are
normalised to 0-1 on load, the range CosineSimilarityLoss compares cosine similarity against.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

from adrbench.errors import UserError
from adrbench.paths import portable_name
from adrbench.results.record import DatasetInfo

__all__ = [
    "DATA_DIR_ENV",
    "HUB_DATASET",
    "SPLITS",
    "StsData",
    "StsSplit",
    "find_local_stsb",
    "load_stsb",
]

DATA_DIR_ENV = "ADRBENCH_STSB_DIR"
HUB_DATASET = "sentence-transformers/stsb"
SPLITS = ("train", "dev", "test")
HEADER = ["score", "sentence1", "sentence2"]


@dataclass(frozen=True, slots=True)
class StsSplit:
    name: str
    sentence1: tuple[str, ...]
    sentence2: tuple[str, ...]
    scores: tuple[float, ...]  # normalised to [0, 1]

    def __len__(self) -> int:
        return len(self.scores)

    def head(self, n: int | None) -> StsSplit:
        if n is None or n >= len(self):
            return self
        return StsSplit(self.name, self.sentence1[:n], self.sentence2[:n], self.scores[:n])

    def sample(self, n: int | None, seed: int = 0) -> StsSplit:
        """A fixed subset of ``n`` pairs (same seed, same pairs), kept in file order."""
        if n is None or n >= len(self):
            return self
        keep = sorted(random.Random(seed).sample(range(len(self)), n))
        return StsSplit(
            self.name,
            tuple(self.sentence1[i] for i in keep),
            tuple(self.sentence2[i] for i in keep),
            tuple(self.scores[i] for i in keep),
        )


@dataclass(frozen=True, slots=True)
class StsData:
    train: StsSplit
    dev: StsSplit
    test: StsSplit
    info: DatasetInfo
    directory: Path | None = None  # the local folder it was read from (None: the hub)


def _parse_tsv(path: Path, split: str) -> tuple[StsSplit, str]:
    raw = path.read_bytes()
    lines = raw.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0].split("\t") != HEADER:
        found = lines[0] if lines else "<empty file>"
        raise UserError(
            f"{path}:1: expected the header 'score<TAB>sentence1<TAB>sentence2', found {found!r}"
        )
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 3:
            raise UserError(f"{path}:{number}: expected 3 tab-separated fields, got {len(fields)}")
        try:
            score = float(fields[0])
        except ValueError:
            raise UserError(f"{path}:{number}: score {fields[0]!r} is not a number") from None
        if not 0.0 <= score <= 5.0:
            raise UserError(f"{path}:{number}: score {score!r} is outside the STS range 0-5")
        scores.append(score / 5.0)
        s1.append(fields[1])
        s2.append(fields[2])
    return StsSplit(split, tuple(s1), tuple(s2), tuple(scores)), hashlib.sha256(raw).hexdigest()


def find_local_stsb(data_dir: Path | str | None) -> Path | None:
    """The directory to read: the argument, else ``$ADRBENCH_STSB_DIR``, else None."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    directory = Path(chosen)
    missing = [f"{s}.tsv" for s in SPLITS if not (directory / f"{s}.tsv").is_file()]
    if missing:
        where = "--data-dir" if data_dir is not None else f"${DATA_DIR_ENV}"
        raise UserError(
            f"{where}={str(directory)!r} has no {', '.join(missing)}; point it at a folder with "
            "STS-B's train.tsv, dev.tsv and test.tsv (header: score, sentence1, sentence2)"
        )
    return directory


def _from_hub() -> StsData | None:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return None
    try:
        from datasets import load_dataset
    except ImportError:
        return None
    try:
        hub = load_dataset(HUB_DATASET)
    except Exception:
        return None
    splits = {}
    for ours, theirs in (("train", "train"), ("dev", "validation"), ("test", "test")):
        table = hub[theirs]
        splits[ours] = StsSplit(
            ours,
            tuple(table["sentence1"]),
            tuple(table["sentence2"]),
            tuple(float(s) for s in table["score"]),  # already 0-1 on the hub
        )
    info = DatasetInfo(name="stsb", source=f"hf:{HUB_DATASET}", sha256={})
    return StsData(splits["train"], splits["dev"], splits["test"], info)


def load_stsb(data_dir: Path | str | None = None, *, root: Path | None = None) -> StsData:
    """Load STS-B. Raises UserError with one sentence saying how to point at data.

    ``info.source`` names a local folder portably (:func:`adrbench.paths.portable_name`: relative
    to ``root`` when inside it, else its folder name); ``StsData.directory`` is where it lies.
    """
    directory = find_local_stsb(data_dir)
    if directory is not None:
        parsed = {s: _parse_tsv(directory / f"{s}.tsv", s) for s in SPLITS}
        info = DatasetInfo(
            name="stsb",
            source=portable_name(str(directory.resolve()), root),
            sha256={s: digest for s, (_, digest) in parsed.items()},
        )
        return StsData(
            parsed["train"][0], parsed["dev"][0], parsed["test"][0], info, directory.resolve()
        )
    hub = _from_hub()
    if hub is not None:
        return hub
    raise UserError(
        f"STS-B data not found: pass --data-dir DIR or set {DATA_DIR_ENV}=DIR to a folder with "
        "train.tsv, dev.tsv and test.tsv (header: score, sentence1, sentence2), or install "
        f"'adrbench[hub]' and go online to fetch {HUB_DATASET}"
    )
