"""The environment fingerprint: what makes timings comparable changes it; what does not, must not.

Baselines are stored per fingerprint, so a fingerprint that moves with a package upgrade would
orphan every baseline, and one that ignores the core count would compare two machines."""

from __future__ import annotations

import os
import platform
from types import SimpleNamespace

import psutil
import pytest

from adrbench.engine import environment
from adrbench.engine.device import DeviceProbe

MACHINE: dict[str, object] = {
    "system": "Linux",
    "machine": "x86_64",
    "cpu": "Test CPU @ 2.0GHz",
    "cores": 2,
    "memory": 24 * 2**30,
    "threads": 2,
    "cuda": None,
    "os": "Linux-6.1-x86_64",
    "python": "3.11.7",
    "package": "1.0",
}


def fingerprint(monkeypatch: pytest.MonkeyPatch, **changes: object) -> str:
    import torch

    m = {**MACHINE, **changes}
    monkeypatch.setattr(platform, "system", lambda: m["system"])
    monkeypatch.setattr(platform, "machine", lambda: m["machine"])
    monkeypatch.setattr(platform, "platform", lambda: m["os"])
    monkeypatch.setattr(platform, "python_version", lambda: m["python"])
    monkeypatch.setattr(environment, "cpu_model", lambda: m["cpu"])
    monkeypatch.setattr(os, "cpu_count", lambda: m["cores"])
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=m["memory"]))
    monkeypatch.setattr(torch, "get_num_threads", lambda: m["threads"])
    monkeypatch.setattr(environment, "_version", lambda package: m["package"])
    cuda = m["cuda"]
    assert cuda is None or isinstance(cuda, str)
    probe = DeviceProbe(cuda_available=cuda is not None, cuda_name=cuda, mps_available=False)
    monkeypatch.setattr("adrbench.engine.device.probe_devices", lambda: probe)
    return environment.capture_environment().fingerprint


CHANGES_IT: list[tuple[str, object]] = [
    ("cpu", "Other CPU @ 3.0GHz"),
    ("cores", 4),
    ("memory", 32 * 2**30),
    ("threads", 1),
    ("cuda", "NVIDIA H200"),
    ("machine", "aarch64"),
]

KEEPS_IT: list[tuple[str, object]] = [
    ("memory", 24 * 2**30 - 200 * 2**20),  # the kernel reserving a little more
    ("os", "Linux-6.2-x86_64"),  # a kernel update
    ("python", "3.11.9"),
    ("package", "2.0"),  # packages are recorded, not hashed
]


@pytest.mark.parametrize(("field", "value"), CHANGES_IT)
def test_what_makes_timings_comparable_changes_the_fingerprint(
    field: str, value: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fingerprint(monkeypatch, **{field: value}) != fingerprint(monkeypatch)


@pytest.mark.parametrize(("field", "value"), KEEPS_IT)
def test_what_does_not_change_the_machine_keeps_the_fingerprint(
    field: str, value: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fingerprint(monkeypatch, **{field: value}) == fingerprint(monkeypatch)


def test_the_fingerprint_is_stable_and_short(monkeypatch: pytest.MonkeyPatch) -> None:
    value = fingerprint(monkeypatch)
    assert value == fingerprint(monkeypatch)
    assert len(value) == 12 and all(c in "0123456789abcdef" for c in value)
