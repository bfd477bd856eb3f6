"""Sentences tokenised once, padded per batch: the ``pretokenize`` speed lever.

On the fly, every training step calls ``model.preprocess`` on its sentences, which runs the
tokenizer inside the timed step. :class:`TokenizedSentences` runs that same ``preprocess`` once over
the whole split before training (so truncation and special tokens are exactly the model's own),
keeps each sentence's unpadded ids, and a step then only pads its batch to the longest member, as
the tokenizer does. ``tests/test_levers.py`` checks that every batch equals the on-the-fly one,
tensor for tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["TokenizedSentences"]


@dataclass(frozen=True, slots=True)
class TokenizedSentences:
    """Unpadded token features per sentence, and how to pad a batch of them.

    Args:
        features: Per tensor key (``input_ids``, ``attention_mask``, ...), one unpadded 1-D
            tensor per sentence.
        pad_values: The value each key is padded with (the tokenizer's pad id for ``input_ids``,
            its pad token type for ``token_type_ids``, 0 for the attention mask).
        extras: Non-tensor entries ``preprocess`` returns (e.g. ``modality``), passed through.
        left_padding: Pad on the left, as tokenizers with ``padding_side='left'`` do.
    """

    features: Mapping[str, tuple[torch.Tensor, ...]]
    pad_values: Mapping[str, int]
    extras: Mapping[str, Any]
    left_padding: bool

    @classmethod
    def of(
        cls, model: SentenceTransformer, sentences: Sequence[str], *, chunk: int = 1024
    ) -> TokenizedSentences:
        """Tokenise ``sentences`` with the model's own ``preprocess``, in chunks, then unpad."""
        tokenizer = model.tokenizer
        left = getattr(tokenizer, "padding_side", "right") == "left"
        features: dict[str, list[torch.Tensor]] = {}
        extras: dict[str, Any] = {}
        for start in range(0, len(sentences), chunk):
            batch = model.preprocess(list(sentences[start : start + chunk]))
            lengths = batch["attention_mask"].sum(dim=1).tolist()
            for key, value in batch.items():
                if not isinstance(value, torch.Tensor):
                    extras[key] = value
                    continue
                rows = features.setdefault(key, [])
                for row, length in zip(value, lengths, strict=True):
                    kept = row[-length:] if left else row[:length]
                    rows.append(kept.clone())
        pad_values = {
            key: (
                int(tokenizer.pad_token_id)
                if key == "input_ids"
                else int(getattr(tokenizer, "pad_token_type_id", 0))
                if key == "token_type_ids"
                else 0
            )
            for key in features
        }
        return cls(
            {k: tuple(v) for k, v in features.items()}, pad_values, extras, left_padding=left
        )

    def __len__(self) -> int:
        return len(self.features["attention_mask"])

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """The padded features of ``indices``, as ``model.preprocess`` would have made them."""
        longest = max(int(self.features["attention_mask"][i].numel()) for i in indices)
        out: dict[str, Any] = {}
        for key, rows in self.features.items():
            padded = torch.full(
                (len(indices), longest), self.pad_values[key], dtype=rows[indices[0]].dtype
            )
            for position, i in enumerate(indices):
                row = rows[i]
                if self.left_padding:
                    padded[position, longest - row.numel() :] = row
                else:
                    padded[position, : row.numel()] = row
            out[key] = padded
        out.update(self.extras)
        return out
