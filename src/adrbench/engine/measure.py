"""Measuring instruments: memory counters named by source, a matmul peak, and the FLOP count.

Memory sources:
- process RSS (psutil) and its high-water mark (getrusage ``ru_maxrss``);
- on Linux the high-water mark can be reset (``/proc/self/clear_refs`` = 5), which gives a peak
  over training alone, read back from ``VmHWM`` in ``/proc/self/status``;
- on Linux the anonymous part of RSS (heap, tensors; not file pages), sampled by
  :class:`AnonPeak`: the kernel keeps no high-water mark for it. File pages (the libraries, the
  mapped checkpoint) count in RSS as far as the page cache lets them fault in, which moved peak
  RSS by ~100 MB between a fresh and a warm environment; anonymous memory does not depend on it;
- CUDA's allocator peak counters after ``reset_peak_memory_stats``;
- MPS has no peak counter, so the caller samples ``current_allocated_memory`` (and the driver's
  allocation, where torch exposes it) every step.

:func:`device_memory` gathers them and names the device's principal counter
(``peak_memory_bytes`` / ``peak_memory_source``): what claims and charts compare.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import psutil
import torch

from adrbench.engine.device import synchronize
from adrbench.results.record import Memory, principal_memory

__all__ = [
    "TRAIN_FLOPS_FORMULA",
    "AnonPeak",
    "anon_rss_bytes",
    "count_parameters",
    "device_memory",
    "matmul_parameters",
    "matmul_peak_flops_per_s",
    "mps_driver_allocated_bytes",
    "process_peak_rss_bytes",
    "reset_peak_rss",
    "rss_bytes",
    "train_flops",
    "window_peak_rss_bytes",
]

_STATUS = Path("/proc/self/status")
_STATM = Path("/proc/self/statm")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_PAGE_BYTES = resource.getpagesize()


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


def anon_rss_bytes() -> int | None:
    """Resident anonymous memory now (Linux ``RssAnon``), None where /proc is not there.

    ``/proc/self/statm`` gives resident and shared (file-backed plus shmem) pages; their
    difference is ``RssAnon`` of ``/proc/self/status``, at a fraction of the cost of reading it.
    """
    try:
        fields = _STATM.read_bytes().split()
    except OSError:
        return None
    return (int(fields[1]) - int(fields[2])) * _PAGE_BYTES


class AnonPeak:
    """The high-water mark of :func:`anon_rss_bytes` over the points it is sampled at.

    The training loop samples three times a step (after the forward pass, after the backward
    pass, after the optimizer step), where a step's activations, gradients and optimizer state
    peak. A peak inside a kernel between two samples is not seen; freed heap that the allocator
    keeps is (it is still resident).
    """

    __slots__ = ("available", "peak")

    def __init__(self) -> None:
        self.available = anon_rss_bytes() is not None
        self.peak = 0

    def sample(self) -> None:
        if self.available:
            self.peak = max(self.peak, anon_rss_bytes() or 0)

    @property
    def peak_bytes(self) -> int | None:
        """The highest sample, or None where anonymous RSS cannot be read."""
        return self.peak if self.available else None


def mps_driver_allocated_bytes() -> int | None:
    """The MPS driver's current allocation, where this torch exposes it (else None)."""
    read = getattr(torch.mps, "driver_allocated_memory", None)
    if read is None:
        return None
    try:
        return int(read())
    except RuntimeError:  # no MPS device behind it
        return None


def device_memory(
    device: str,
    *,
    rss_before_train_bytes: int,
    peak_rss_bytes: int,
    train_peak_rss_bytes: int | None,
    mps_sampled_max_allocated_bytes: int | None,
    mps_driver_max_allocated_bytes: int | None = None,
    train_peak_anon_rss_bytes: int | None = None,
) -> Memory:
    """Every memory counter after training, and the device's principal one.

    CUDA's peaks are read here (after ``reset_peak_memory_stats`` before training); MPS values
    are the maxima the training loop sampled.

    Args:
        device: The device that trained.
        rss_before_train_bytes: RSS before the first step.
        peak_rss_bytes: Process RSS high-water mark.
        train_peak_rss_bytes: RSS high-water mark over training (Linux), else None.
        mps_sampled_max_allocated_bytes: Sampled max of MPS current allocation, on MPS.
        mps_driver_max_allocated_bytes: Sampled max of the MPS driver's allocation, if exposed.
        train_peak_anon_rss_bytes: Sampled peak of anonymous RSS over training (Linux).
    """
    cuda = device.startswith("cuda")
    cuda_allocated = int(torch.cuda.max_memory_allocated()) if cuda else None
    cuda_reserved = int(torch.cuda.max_memory_reserved()) if cuda else None
    peak, source = principal_memory(
        device,
        peak_rss_bytes=peak_rss_bytes,
        train_peak_rss_bytes=train_peak_rss_bytes,
        cuda_max_allocated_bytes=cuda_allocated,
        mps_sampled_max_allocated_bytes=mps_sampled_max_allocated_bytes,
        mps_driver_max_allocated_bytes=mps_driver_max_allocated_bytes,
    )
    return Memory(
        rss_before_train_bytes=rss_before_train_bytes,
        peak_rss_bytes=peak_rss_bytes,
        train_peak_rss_bytes=train_peak_rss_bytes,
        train_peak_anon_rss_bytes=train_peak_anon_rss_bytes,
        cuda_max_allocated_bytes=cuda_allocated,
        cuda_max_reserved_bytes=cuda_reserved,
        mps_sampled_max_allocated_bytes=mps_sampled_max_allocated_bytes,
        peak_memory_bytes=peak,
        peak_memory_source=source,
    )


def matmul_peak_flops_per_s(device: str, dtype: torch.dtype, *, seconds: float = 0.5) -> float:
    """Best FLOP/s of a square matmul, timed in this process (the worker times it before and after
    training and keeps the better of the two).

    ``dtype`` is the scenario's (a bf16 scenario is measured against a bf16 matmul). The size is
    large enough to be compute-bound on a CPU (512) and, on CUDA, to approach the device's peak
    (8192: a 512-wide matmul reached only a few percent of an H200's). Taking the best of several
    repeats estimates what the hardware can do, not what it happened to do once.
    """
    n = 8192 if device.startswith("cuda") else 512
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
