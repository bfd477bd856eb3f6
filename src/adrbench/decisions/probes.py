"""Premise probes: small checks that really run on this machine and report what they found.

A premise such as "bitsandbytes 4-bit needs CUDA" is only as good as its last test, so instead of
reading a version table we quantize a small tensor to NF4 on the CPU and see whether it works.

Probes run in one child process (``python -m adrbench.decisions.probes``) with a timeout: importing
bitsandbytes can be slow or crash on an odd machine, and neither may take ``adrbench check`` down.
A probe that cannot run (package missing, timeout, crash) yields *unknown* with its reason, never
false. bitsandbytes is imported inside the probe only, never at module top.

Run by hand::

    python -m adrbench.decisions.probes          # prints the JSON the parent reads
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "PROBES",
    "ProbeResult",
    "ProbeSpec",
    "ProbeUnavailable",
    "probe_fact_names",
    "run_probes",
    "run_probes_in_process",
]

ProbeValue = bool | float


class ProbeUnavailable(Exception):
    """The probe could not run here (e.g. the package is not installed); the reason says why."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one fact of a probe came to.

    Args:
        name: The fact name under ``probes.`` (e.g. ``bnb_nf4_on_cpu``).
        value: The finding, or None when the probe could not run.
        detail: One sentence: what was done and seen, or why it could not run.
    """

    name: str
    value: ProbeValue | None
    detail: str


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A registered probe.

    Args:
        name: Registry key.
        facts: The fact names it yields under ``probes.``.
        help: What it checks.
        function: Runs the check and returns ``(facts, detail)``; raises
            :class:`ProbeUnavailable` when it cannot run here.
    """

    name: str
    facts: tuple[str, ...]
    help: str
    function: Callable[[], tuple[dict[str, ProbeValue], str]]


def _bnb_nf4_on_cpu() -> tuple[dict[str, ProbeValue], str]:
    try:
        import torch
    except ImportError as error:
        raise ProbeUnavailable(f"torch is not installed ({error})") from None
    try:
        import bitsandbytes
        import bitsandbytes.functional as bnb_functional
    except ImportError as error:
        raise ProbeUnavailable(f"bitsandbytes is not installed ({error})") from None
    version = getattr(bitsandbytes, "__version__", "?")
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(64, 64, generator=generator)  # on the CPU, on purpose
    try:
        packed, state = bnb_functional.quantize_4bit(weights, blocksize=64, quant_type="nf4")
        restored = bnb_functional.dequantize_4bit(packed, state, quant_type="nf4")
    except Exception as error:  # any failure to quantize on CPU is the finding itself
        message = str(error).splitlines()[0] if str(error) else ""
        return {"bnb_nf4_on_cpu": False}, (
            f"bitsandbytes {version}: quantize_4bit(nf4) on a CPU tensor raised "
            f"{type(error).__name__}: {message}"
        )
    error_ratio = float((weights - restored).abs().mean() / weights.abs().mean())
    # A real 4-bit result: packed two values per byte, on the CPU, and close to the input
    # (NF4 round-trip error on Gaussian weights is about 10%; 25% would mean garbage).
    packed_ok = packed.device.type == "cpu" and packed.numel() * 2 == weights.numel()
    works = bool(packed_ok and restored.shape == weights.shape and error_ratio < 0.25)
    detail = (
        f"bitsandbytes {version}: quantized a 64x64 float32 CPU tensor to NF4 "
        f"({packed.numel()} bytes, dtype {packed.dtype}) and back; mean relative error "
        f"{error_ratio:.3f}"
    )
    return {"bnb_nf4_on_cpu": works, "bnb_nf4_roundtrip_error": error_ratio}, detail


PROBES: Mapping[str, ProbeSpec] = {
    "bnb_nf4_cpu": ProbeSpec(
        name="bnb_nf4_cpu",
        facts=("bnb_nf4_on_cpu", "bnb_nf4_roundtrip_error"),
        help="quantize a small tensor to NF4 on the CPU with bitsandbytes and back",
        function=_bnb_nf4_on_cpu,
    ),
}


def probe_fact_names() -> tuple[str, ...]:
    """Every fact name the probes can yield (without the ``probes.`` prefix)."""
    return tuple(name for spec in PROBES.values() for name in spec.facts)


def run_probes_in_process() -> dict[str, ProbeResult]:
    """Run every probe here, in this process. The child process of :func:`run_probes` calls this."""
    results: dict[str, ProbeResult] = {}
    for spec in PROBES.values():
        try:
            values, detail = spec.function()
        except ProbeUnavailable as error:
            for fact in spec.facts:
                results[fact] = ProbeResult(fact, None, f"probe {spec.name} could not run: {error}")
            continue
        for fact in spec.facts:
            value = values.get(fact)
            results[fact] = ProbeResult(fact, value, detail)
    return results


_MARKER = "ADRBENCH-PROBES "


def run_probes(timeout_s: float = 180.0) -> dict[str, ProbeResult]:
    """Run every probe in a fresh child process, with a timeout.

    Args:
        timeout_s: Give up after this many seconds; every probe is then unknown.

    Returns:
        One result per fact name; a probe that could not run has ``value=None`` and says why.
    """
    command = [sys.executable, "-m", "adrbench.decisions.probes"]

    def unknown(reason: str) -> dict[str, ProbeResult]:
        return {name: ProbeResult(name, None, reason) for name in probe_fact_names()}

    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return unknown(f"probes timed out after {timeout_s:g} s")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_MARKER):
            data = json.loads(line[len(_MARKER) :])
            return {
                name: ProbeResult(name, item["value"], item["detail"])
                for name, item in data.items()
            }
    tail = " ".join(done.stderr.strip().splitlines()[-2:])[-300:]
    return unknown(f"probe process exited with status {done.returncode} without a result: {tail}")


def _main() -> None:
    results = run_probes_in_process()
    data = {name: {"value": r.value, "detail": r.detail} for name, r in results.items()}
    print(_MARKER + json.dumps(data, sort_keys=True), flush=True)


if __name__ == "__main__":
    _main()
