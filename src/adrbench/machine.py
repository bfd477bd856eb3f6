"""This machine's environment, remembered so that commands which train nothing need no torch.

The environment fingerprint (:func:`adrbench.engine.environment.capture_environment`) hashes
torch's device probe and default thread count, so capturing it imports torch (~1.2 s here).
``check`` needs it only to tell which evidence is this machine's. Every capture made through
:func:`capture_and_remember` (``adrbench run``, and the first ``check`` of a boot) leaves it in
``<cache>/environment/<key>.json``; :func:`this_environment` reads it back when the key matches.
The key holds what the fingerprint can depend on and can be read without torch: the boot id
(hardware, drivers), the host, the interpreter, the installed torch version, the CPU count and
the variables that set torch's threads or the GPUs it sees. A missing or unreadable entry means a
fresh capture; nothing is lost.

This lives outside ``adrbench.engine`` on purpose: the engine's modules are the measuring code
whose hash decides whether evidence is stale, and remembering a fingerprint measures nothing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path

import psutil

from adrbench.errors import ResultsError
from adrbench.results.record import Environment, from_data, to_data

__all__ = ["capture_and_remember", "this_environment"]

CACHE_ENV = "ADRBENCH_CACHE_DIR"
_KEY_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


def this_environment() -> Environment:
    """This machine's environment: remembered when an earlier capture matches the key, else
    captured now (which imports torch) and remembered."""
    path = _cache_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return from_data(Environment, data, source=str(path))
    except (OSError, ValueError, ResultsError):  # none yet, or one this version cannot read
        return capture_and_remember()


def capture_and_remember() -> Environment:
    """Capture this machine's environment (imports torch) and leave it for
    :func:`this_environment`; a cache that cannot be written only means capturing again."""
    from adrbench.engine.environment import capture_environment

    environment = capture_environment()
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(to_data(environment)), encoding="utf-8")
        tmp.replace(path)  # atomic: a reader sees the old entry or the new one, never half
    except OSError:
        pass
    return environment


def _cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "adrbench"


def _cache_key() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = str(psutil.boot_time())
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = ""
    parts = [
        boot,
        platform.node(),
        sys.executable,
        torch_version,
        str(os.cpu_count()),
        *(f"{name}={os.environ.get(name, '')}" for name in _KEY_VARIABLES),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _cache_path() -> Path:
    return _cache_dir() / "environment" / f"{_cache_key()}.json"
