"""This machine's environment, remembered so that ``check --no-probes`` needs no torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adrbench import machine
from adrbench.engine import environment
from adrbench.results.record import Environment


def test_a_remembered_capture_is_reused_by_a_fresh_interpreter_without_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a real capture (it imports torch) remembered in an empty cache
    monkeypatch.setenv(machine.CACHE_ENV, str(tmp_path))
    captured = machine.capture_and_remember()
    # WHEN a fresh interpreter of the same boot, interpreter and thread settings asks
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from adrbench.machine import this_environment; "
            "print(this_environment().fingerprint, 'torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, machine.CACHE_ENV: str(tmp_path)},
    )
    # THEN it gets the same fingerprint without loading torch
    assert done.stdout.split() == [captured.fingerprint, "False"]


def test_thread_and_gpu_settings_key_the_remembered_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(machine.CACHE_ENV, str(tmp_path))
    plain = machine._cache_path()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.setenv(name, "1")
        assert machine._cache_path() != plain, name
        monkeypatch.delenv(name)
    assert machine._cache_path() == plain


@pytest.mark.parametrize("cached", [None, "{not json", '{"fingerprint": "abc"}'])
def test_a_missing_or_unreadable_entry_means_a_fresh_capture(
    cached: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN no entry, a corrupt one, or one with missing fields
    monkeypatch.setenv(machine.CACHE_ENV, str(tmp_path))
    if cached is not None:
        path = machine._cache_path()
        path.parent.mkdir(parents=True)
        path.write_text(cached, encoding="utf-8")
    real = environment.capture_environment()
    calls: list[int] = []

    def capture() -> Environment:
        calls.append(1)
        return real

    monkeypatch.setattr(environment, "capture_environment", capture)
    # WHEN this machine's environment is asked for THEN it is captured once, then remembered
    assert machine.this_environment() == real
    assert machine.this_environment() == real
    assert calls == [1]


def test_remembering_is_outside_the_measuring_code() -> None:
    # the engine's modules are hashed into every run's provenance; this module must not be
    engine = Path(environment.__file__).parent
    assert Path(machine.__file__).parent != engine
