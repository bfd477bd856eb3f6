"""Which accelerator this process can use, and how to wait for it.

``probe_devices`` is the one place that asks torch about hardware, so tests can replace it to
pretend CUDA is present without touching any decision made from its answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from adrbench.engine.scenario import DeviceName

__all__ = ["DeviceProbe", "probe_devices", "resolve_device", "synchronize"]


@dataclass(frozen=True, slots=True)
class DeviceProbe:
    cuda_available: bool
    cuda_name: str | None
    mps_available: bool

    @property
    def best(self) -> str:
        """The device ``auto`` picks: cuda, then mps, then cpu."""
        if self.cuda_available:
            return "cuda"
        if self.mps_available:
            return "mps"
        return "cpu"

    def describe(self) -> str:
        if self.cuda_available:
            return f"cuda ({self.cuda_name})"
        return "mps (Apple GPU)" if self.mps_available else "cpu (no CUDA or MPS device found)"


def probe_devices() -> DeviceProbe:
    cuda = torch.cuda.is_available()
    return DeviceProbe(
        cuda_available=cuda,
        cuda_name=torch.cuda.get_device_name(0) if cuda else None,
        mps_available=bool(torch.backends.mps.is_available()),
    )


def resolve_device(requested: DeviceName, probe: DeviceProbe) -> str | None:
    """The concrete device for ``requested``, or None when it is not present on this machine."""
    if requested == "auto":
        return probe.best
    available = {"cpu": True, "cuda": probe.cuda_available, "mps": probe.mps_available}
    return requested if available[requested] else None


def synchronize(device: str) -> None:
    """Wait for queued kernels, so a timer measures work done rather than work queued."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()
