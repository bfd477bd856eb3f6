"""glibc's mmap threshold: freed large blocks go back to the system once it is capped.

Each case runs in its own interpreter: ``mallopt`` changes the whole process's heap, and the
pattern below (large blocks interleaved with small live ones, as quantizing a model leaves them)
needs a heap nothing else has shaped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adrbench.engine import allocator

MIB = 1 << 20
BLOCKS = 64  # 64 blocks of 2 MiB: 128 MiB freed
glibc_linux = pytest.mark.skipif(
    not Path("/proc/self/statm").exists() or sys.platform != "linux",
    reason="mallopt and /proc/self/statm are glibc on Linux",
)

_FREE_INTERLEAVED = textwrap.dedent(
    f"""
    import ctypes, ctypes.util, json, sys
    from adrbench.engine import allocator, measure

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
    capped = sys.argv[1] == "capped" and allocator.cap_mmap_threshold()

    def block(size):
        pointer = libc.malloc(size)
        libc.memset(pointer, 1, size)  # written: resident
        return pointer

    # A freed 4 MiB mapping raises glibc's dynamic threshold above 2 MiB, as the first freed fp32
    # weight does while a model is quantized; then 2 MiB blocks with small live blocks between.
    libc.free(block(4 * {MIB}))
    large, small = [], []
    for _ in range({BLOCKS}):
        large.append(block(2 * {MIB}))
        small.append(block(4096))  # from the top of the heap (256 bytes would fill old holes)
    before = measure.anon_rss_bytes()
    for pointer in large:
        libc.free(pointer)
    after = measure.anon_rss_bytes()
    print(json.dumps({{"capped": bool(capped), "released": before - after}}))
    """
)


def _released(mode: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _FREE_INTERLEAVED, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@glibc_linux
def test_capped_threshold_returns_freed_blocks_that_the_heap_would_keep() -> None:
    uncapped = _released("default")
    released = uncapped["released"]
    assert isinstance(released, int)
    if released > BLOCKS * MIB:
        pytest.skip(
            f"this C library released {released / MIB:.0f} MiB of the interleaved blocks "
            "without a cap: nothing here for cap_mmap_threshold to fix"
        )
    capped = _released("capped")
    assert capped["capped"] is True
    freed = capped["released"]
    assert isinstance(freed, int)
    assert freed >= 0.9 * BLOCKS * 2 * MIB  # every 2 MiB block was its own mapping


def test_a_non_positive_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit_bytes=0 must be positive"):
        allocator.cap_mmap_threshold(0)
