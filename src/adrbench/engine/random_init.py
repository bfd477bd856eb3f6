"""Randomly initialised models from a ``config.json``: the model spec ``random:PATH``.

Peak training memory depends on a model's shapes, not on its weight values, so the memory-scaling
suite (``bench/memory_scaling.toml``) trains models of one family at many sizes without
downloading any. ``model = "random:bench/shapes/bert-1b.json"`` means: a BERT built from that
config with seeded random weights, the packaged all-MiniLM-L6-v2's tokenizer, mean pooling and
normalisation (the same sentence-transformers pipeline as the real model).

The model is materialised once into ``$ADRBENCH_CACHE_DIR/random-init/<name>-<hash>/`` (default
``~/.cache/adrbench``) by a child process, then loaded from there like any local model, so
``full``, ``lora`` and ``qlora`` (which quantizes while loading) share one loading path and the
scenario's own process never holds the memory that building the weights took.

Build one by hand: ``python -m adrbench.engine.random_init bench/shapes/bert-1b.json``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from adrbench.errors import ScenarioError

__all__ = ["PREFIX", "cache_dir", "is_random_spec", "materialise", "target_dir"]

PREFIX = "random:"
CACHE_ENV = "ADRBENCH_CACHE_DIR"
_DONE = ".adrbench-complete"


def is_random_spec(model: str) -> bool:
    return model.startswith(PREFIX)


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "adrbench"


def _config_path(model: str) -> Path:
    path = Path(model[len(PREFIX) :])
    if not path.is_file():
        raise ScenarioError(
            f"model={model!r}: {path} is not a file; give a BERT config.json after 'random:', "
            "e.g. random:bench/shapes/bert-110m.json"
        )
    return path


def target_dir(model: str) -> Path:
    """Where ``random:PATH`` is materialised: named after the file and a hash of its bytes."""
    path = _config_path(model)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return cache_dir() / "random-init" / f"{path.stem}-{digest}"


def materialise(model: str) -> Path:
    """The directory of the model ``random:PATH``, built (in a child process) if absent."""
    target = target_dir(model)
    if (target / _DONE).is_file():
        return target
    config = _config_path(model)
    command = [sys.executable, "-m", "adrbench.engine.random_init", str(config), str(target)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (target / _DONE).is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ScenarioError(f"model={model!r}: building the random model failed: {tail[0]}")
    return target


def _build(config_path: Path, target: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling
    from transformers import BertConfig, BertModel

    from adrbench.engine.models import resolve_model

    config = BertConfig.from_json_file(str(config_path))
    if config.model_type != "bert":
        raise ScenarioError(
            f"{config_path}: model_type={config.model_type!r}; only 'bert' is built"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The packaged model gives the tokenizer and the pooling/normalisation modules.
    model = SentenceTransformer(resolve_model("default"), device="cpu")
    torch.manual_seed(0)
    model[0].model = BertModel(config)
    model._modules["1"] = Pooling(config.hidden_size, pooling_mode="mean")
    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    model.save(str(scratch))
    (scratch / _DONE).write_text(str(config_path) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m adrbench.engine.random_init CONFIG.json [TARGET_DIR]")
        return 2
    if len(args) == 1:
        print(materialise(PREFIX + args[0]))
        return 0
    _build(Path(args[0]), Path(args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
