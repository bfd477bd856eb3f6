"""The C heap under a CPU training process: make glibc give freed large blocks back.

Loading a QLoRA base on the CPU reads every weight in fp32 and quantizes it to NF4; the fp32
copies are freed, but glibc's malloc serves such blocks from its heap once its dynamic mmap
threshold has grown past them (it grows to the size of each freed mmapped block, up to 32 MiB),
and a heap fragmented by the small NF4 tensors allocated in between is never trimmed. On the
335M-parameter model that left ~600 MiB of freed fp32 copies resident after loading and put the
anonymous training peak at 2522 MiB, against 1113 MiB with the threshold fixed at 1 MiB (a scratch
check, `results/evidence/memory-scaling/README.md`). With it fixed, the peak measures what training
needs, which is what the memory model estimates.

:func:`cap_mmap_threshold` calls ``mallopt(M_MMAP_THRESHOLD, limit)`` in this process: from then
on every allocation of ``limit`` bytes or more is its own mapping, returned to the system when
freed (and the threshold stops adapting). It changes where memory comes from, never what is
computed. Only glibc has ``mallopt``; elsewhere (musl, macOS) it returns False and changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["MMAP_THRESHOLD_BYTES", "M_MMAP_THRESHOLD", "cap_mmap_threshold"]

M_MMAP_THRESHOLD = -3  # <malloc.h>
MMAP_THRESHOLD_BYTES = 1 << 20  # 1 MiB: glibc's default before it adapts is 128 KiB


def cap_mmap_threshold(limit_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``limit_bytes``; True when the C library accepted it."""
    if limit_bytes <= 0:
        raise ValueError(f"limit_bytes={limit_bytes} must be positive")
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, limit_bytes))
