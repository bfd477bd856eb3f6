"""The ``compile`` speed lever: ``torch.compile`` the transformer where it works here.

Inductor on a CPU generates C++ and needs a working compiler toolchain; on some Python or torch
builds dynamo is not supported at all. :func:`compile_problem` finds out before a scenario spends
minutes loading and evaluating, by compiling and running a tiny forward and backward; a scenario
that cannot compile is recorded ``skipped`` with reason ``compile_unavailable`` and the error,
never a crashed run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch

from adrbench.results.record import Skip

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["compile_model", "compile_problem"]


def _probe(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.gelu(x @ w).sum()


def compile_problem(device: str) -> Skip | None:
    """None when a compiled forward and backward runs on ``device``, else the skip to record."""
    try:
        compiled = torch.compile(_probe, dynamic=True)
        x = torch.randn(4, 8, device=device)
        w = torch.randn(8, 8, device=device, requires_grad=True)
        out: torch.Tensor = compiled(x, w)
        torch.autograd.backward(out)
    except Exception as error:  # any backend failure means: not here
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        return Skip(
            reason="compile_unavailable",
            message=f"torch.compile cannot run on {device} here "
            f"({type(error).__name__}: {first_line}); run without compile=true",
        )
    finally:
        torch._dynamo.reset()
    return None


def compile_model(model: SentenceTransformer) -> None:
    """Compile the inner transformer in place (dynamic shapes: batches vary in length)."""
    inner = cast("torch.nn.Module", model[0].auto_model)
    inner.compile(dynamic=True)
