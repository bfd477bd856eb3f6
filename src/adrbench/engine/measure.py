"""Measuring instruments: memory counters named by source, a matmul peak, and the FLOP count.

Memory sources:
- process RSS (psutil) and its high-water mark (getrusage ``ru_maxrss``);
- on Linux the high-water mark can be reset (``/proc/self/clear_refs`` = 5), which gives a peak
  over training alone, read back from ``VmHWM`` in ``/proc/self/status``;
- CUDA's allocator peak counters after ``reset_peak_memory_stats``;
- MPS has no peak counter, so the caller samples ``current_allocated_memory`` every step.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import psutil
import torch

from adrbench.engine.device import synchronize

__all__ = [
    "TRAIN_FLOPS_FORMULA",
    "count_parameters",
    "matmul_parameters",
    "matmul_peak_flops_per_s",
    "process_peak_rss_bytes",
    "reset_peak_rss",
    "rss_bytes",
    "train_flops",
    "window_peak_rss_bytes",
]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def process_peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS: bytes; Linux: KiB


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def window_peak_rss_bytes() -> int | None:
    """``VmHWM``: the RSS high-water mark since the last :func:`reset_peak_rss` (Linux)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def matmul_peak_flops_per_s(device: str, dtype: torch.dtype, *, seconds: float = 0.5) -> float:
    """Best FLOP/s of a square matmul, timed in this process just before training.

    The size is large enough to be compute-bound on a CPU (512) or GPU (4096). Taking the best
    of several repeats estimates what the hardware can do, not what it happened to do once.
    """
    n = 4096 if device.startswith("cuda") else 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):  # warm-up: thread pool, caches, kernel selection
        a @ b
    synchronize(device)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def _logical_numel(parameter: torch.nn.Parameter) -> int:
    # bitsandbytes packs two 4-bit weights per byte; its quant_state keeps the logical shape.
    state = getattr(parameter, "quant_state", None)
    if state is not None and getattr(state, "shape", None) is not None:
        return int(torch.Size(state.shape).numel())
    return parameter.numel()


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(total, trainable) parameters, counting 4-bit packed weights at their logical size."""
    total = trainable = 0
    for parameter in model.parameters():
        n = _logical_numel(parameter)
        total += n
        if parameter.requires_grad:
            trainable += n
    return total, trainable


def matmul_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(all, trainable) weights of 2-D matmul layers, embeddings excluded (they are lookups)."""
    total = trainable = 0
    for name, parameter in model.named_parameters():
        if "embeddings" in name or (parameter.dim() != 2 and not hasattr(parameter, "quant_state")):
            continue
        total += _logical_numel(parameter)
        if parameter.requires_grad:
            trainable += _logical_numel(parameter)
    return total, trainable


TRAIN_FLOPS_FORMULA = (
    "FLOPs per timed step = (4 * N_matmul + 2 * N_trainable_matmul) * padded_tokens; "
    "forward 2*N*T, activation gradients 2*N*T, weight gradients 2*N_trainable*T; "
    "N = 2-D weights outside the embeddings, T = tokens incl. padding of both sentences; "
    "attention score products (O(T*seq_len*d)) are left out"
)


def train_flops(n_matmul: int, n_trainable_matmul: int, padded_tokens: int) -> float:
    return float((4 * n_matmul + 2 * n_trainable_matmul) * padded_tokens)
