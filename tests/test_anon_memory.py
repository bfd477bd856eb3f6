"""The anonymous-RSS sampler: memory the page cache cannot move, seen on a known allocation."""

from __future__ import annotations

import json
import mmap
import sys
from pathlib import Path

import pytest
import torch

from adrbench.engine import measure
from adrbench.results.record import SCHEMA_VERSION, run_from_json, run_to_json
from factories import make_run

MB = 10**6
linux_only = pytest.mark.skipif(
    not Path("/proc/self/statm").exists(), reason="anonymous RSS is read from Linux /proc"
)


@linux_only
def test_a_known_allocation_shows_in_anonymous_rss() -> None:
    before = measure.anon_rss_bytes()
    block = torch.ones(200 * MB, dtype=torch.uint8)  # written: resident
    during = measure.anon_rss_bytes()
    assert before is not None and during is not None
    assert 190 * MB <= during - before <= 215 * MB
    del block


@linux_only
def test_file_pages_do_not_count(tmp_path: Path) -> None:
    # 64 MB of a file, mapped and read: resident (RSS grows) but file-backed, not anonymous.
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x01" * (64 * MB))
    before_anon, before_rss = measure.anon_rss_bytes(), measure.rss_bytes()
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        total = sum(view[i] for i in range(0, len(view), 4096))  # touch every page
        after_anon, after_rss = measure.anon_rss_bytes(), measure.rss_bytes()
    assert total == 64 * MB // 4096
    assert before_anon is not None and after_anon is not None
    assert after_rss - before_rss >= 60 * MB
    assert abs(after_anon - before_anon) < 8 * MB


@linux_only
def test_the_peak_keeps_the_highest_sample_after_a_free() -> None:
    peak = measure.AnonPeak()
    peak.sample()
    start = peak.peak_bytes
    block = torch.ones(150 * MB, dtype=torch.uint8)
    peak.sample()
    del block
    peak.sample()
    assert start is not None and peak.peak_bytes is not None
    assert peak.peak_bytes - start >= 140 * MB


def test_without_proc_the_peak_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "_STATM", Path("/nonexistent/statm"))
    peak = measure.AnonPeak()
    peak.sample()
    assert measure.anon_rss_bytes() is None
    assert peak.peak_bytes is None


def test_schema_3_runs_load_with_the_new_fields_unmeasured() -> None:
    data = json.loads(run_to_json(make_run()))
    data["schema_version"] = 3
    del data["environment"]["boot_id"]
    for scenario in data["scenarios"]:
        if scenario["metrics"] is not None:
            del scenario["metrics"]["memory"]["train_peak_anon_rss_bytes"]
    run = run_from_json(json.dumps(data), source="old.json")
    assert run.schema_version == SCHEMA_VERSION
    assert run.environment.boot_id is None
    memories = [s.metrics.memory for s in run.scenarios if s.metrics is not None]
    assert memories and all(m.train_peak_anon_rss_bytes is None for m in memories)


def test_this_platform_is_linux_or_the_sampler_says_so() -> None:
    assert (measure.anon_rss_bytes() is not None) == sys.platform.startswith("linux")
