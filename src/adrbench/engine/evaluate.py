"""STS agreement: Spearman and Pearson of the cosine similarity of both sentences' embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from scipy.stats import pearsonr, spearmanr

from adrbench.engine.data import StsSplit
from adrbench.results.record import Scores

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["evaluate_sts"]


@torch.no_grad()
def evaluate_sts(model: SentenceTransformer, split: StsSplit, *, batch_size: int) -> Scores:
    was_training = model.training
    model.eval()
    try:
        a = model.encode(list(split.sentence1), batch_size=batch_size, convert_to_tensor=True)
        b = model.encode(list(split.sentence2), batch_size=batch_size, convert_to_tensor=True)
    finally:
        model.train(was_training)
    cosine = torch.nn.functional.cosine_similarity(a.float(), b.float()).cpu().numpy()
    gold = list(split.scores)
    return Scores(
        spearman=float(spearmanr(cosine, gold).statistic),
        pearson=float(pearsonr(cosine, gold).statistic),
        pairs=len(split),
    )
