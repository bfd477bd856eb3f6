"""The device's principal memory counter: CUDA max allocated, MPS allocation, CPU train RSS.

CUDA and MPS are faked at the probe boundary (the torch counters), so this runs on any machine.
"""

from __future__ import annotations

import pytest
import torch

from adrbench.engine import measure
from adrbench.results.record import Memory, principal_memory

MiB = 2**20


def _memory(device: str, **kwargs: int | None) -> Memory:
    options: dict[str, int | None] = {
        "rss_before_train_bytes": 800 * MiB,
        "peak_rss_bytes": 1800 * MiB,
        "train_peak_rss_bytes": 1700 * MiB,
        "mps_sampled_max_allocated_bytes": None,
    }
    options.update(kwargs)
    return measure.device_memory(device, **options)  # type: ignore[arg-type]


def test_cuda_uses_max_allocated_and_keeps_the_raw_counters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a CUDA device whose allocator reports 565 MiB allocated, 714 MiB reserved
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a, **k: 565 * MiB)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a, **k: 714 * MiB)
    # WHEN the memory is gathered
    memory = _memory("cuda:0")
    # THEN the principal counter is CUDA max allocated, not the process RSS
    assert (memory.peak_memory_bytes, memory.peak_memory_source) == (
        565 * MiB,
        "cuda_max_allocated",
    )
    assert memory.cuda_max_reserved_bytes == 714 * MiB
    assert memory.peak_rss_bytes == 1800 * MiB


def test_mps_prefers_the_driver_allocation_then_the_sampled_maximum() -> None:
    driver = _memory(
        "mps", mps_sampled_max_allocated_bytes=300 * MiB, mps_driver_max_allocated_bytes=420 * MiB
    )
    assert (driver.peak_memory_bytes, driver.peak_memory_source) == (
        420 * MiB,
        "mps_driver_allocated_max",
    )
    sampled = _memory("mps", mps_sampled_max_allocated_bytes=300 * MiB)
    assert (sampled.peak_memory_bytes, sampled.peak_memory_source) == (
        300 * MiB,
        "mps_sampled_max_allocated",
    )


def test_mps_driver_counter_is_read_where_torch_exposes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: 420 * MiB, raising=False)
    assert measure.mps_driver_allocated_bytes() == 420 * MiB
    monkeypatch.delattr(torch.mps, "driver_allocated_memory", raising=False)
    assert measure.mps_driver_allocated_bytes() is None


def test_cpu_uses_the_training_window_peak_else_the_process_peak() -> None:
    window = _memory("cpu")
    assert (window.peak_memory_bytes, window.peak_memory_source) == (1700 * MiB, "train_peak_rss")
    process = _memory("cpu", train_peak_rss_bytes=None)
    assert (process.peak_memory_bytes, process.peak_memory_source) == (
        1800 * MiB,
        "process_peak_rss",
    )


def test_cuda_without_its_counter_falls_back_to_rss() -> None:
    # A record claiming CUDA without the allocator counter (never written by the worker) still
    # gets an honest source rather than a made-up CUDA figure.
    assert principal_memory(
        "cuda:0",
        peak_rss_bytes=5,
        train_peak_rss_bytes=None,
        cuda_max_allocated_bytes=None,
        mps_sampled_max_allocated_bytes=None,
    ) == (5, "process_peak_rss")


def test_an_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="peak_memory_source 'vram' is not one of"):
        Memory(1, 2, None, None, None, None, 2, "vram")
