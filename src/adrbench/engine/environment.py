"""Provenance: the machine, the packages and the git state a run came from."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import psutil

from adrbench.results.record import Environment, GitInfo

__all__ = [
    "PACKAGES",
    "TRAINING_STACK",
    "capture_environment",
    "capture_git",
    "cpu_model",
    "installed_versions",
    "measuring_code_sha256",
    "repository_root",
]

PACKAGES = (
    "adrbench",
    "torch",
    "transformers",
    "sentence-transformers",
    "peft",
    "bitsandbytes",
    "numpy",
    "scipy",
)

# The packages whose versions decide what a run measures: a different one makes evidence stale.
TRAINING_STACK = ("torch", "transformers", "sentence-transformers", "peft", "bitsandbytes")


def measuring_code_sha256() -> str:
    """Hash of the code that measures: every module of ``adrbench.engine`` (name and bytes).

    Reports, decisions, the CLI and documentation are outside it, so changing them never makes
    evidence stale.
    """
    engine = Path(__file__).parent
    digest = hashlib.sha256()
    for module in sorted(engine.glob("*.py")):
        digest.update(module.name.encode() + b"\0" + module.read_bytes() + b"\0")
    return digest.hexdigest()


def installed_versions(packages: tuple[str, ...] = TRAINING_STACK) -> dict[str, str | None]:
    """The installed version of each package (None: not installed)."""
    return {p: _version(p) for p in packages}


def repository_root(start: Path) -> Path:
    """The git work tree holding ``start``, else ``start`` itself."""
    top = _git("rev-parse", "--show-toplevel", cwd=start)
    return Path(top) if top else start


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def capture_environment() -> Environment:
    import torch

    from adrbench.engine.device import probe_devices

    probe = probe_devices()
    kind = probe.best
    name = probe.cuda_name or ("Apple GPU" if kind == "mps" else cpu_model())
    cores = os.cpu_count() or 1
    memory = int(psutil.virtual_memory().total)
    threads = torch.get_num_threads()
    # Machine identity only: what makes timings comparable. Memory is rounded to whole GiB so a
    # kernel reserving a little more does not make a new machine; packages are recorded, not hashed.
    identity = "|".join(
        [
            platform.system(),
            platform.machine(),
            cpu_model(),
            str(cores),
            str(round(memory / 2**30)),
            kind,
            name,
            str(threads),
        ]
    )
    return Environment(
        fingerprint=hashlib.sha256(identity.encode()).hexdigest()[:12],
        os=platform.platform(),
        python=platform.python_version(),
        cpu_model=cpu_model(),
        cores=cores,
        memory_bytes=memory,
        device_kind=kind,
        device_name=name,
        cuda_available=probe.cuda_available,
        mps_available=probe.mps_available,
        torch_threads=threads,
        packages={p: _version(p) for p in PACKAGES},
        boot_id=boot_id(),
    )


def boot_id() -> str | None:
    """This boot of the machine (Linux ``/proc/sys/kernel/random/boot_id``), else None."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def capture_git(cwd: Path | None = None) -> GitInfo:
    where = cwd or Path.cwd()
    commit = _git("rev-parse", "HEAD", cwd=where)
    if commit is None:
        return GitInfo(commit=None, branch=None, worktree_is_dirty=None)
    branch = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=where)
    # Results written by this very run are not "dirty code": ignore the results folder.
    status = _git(
        "status", "--porcelain", "--", ".", ":(exclude)results", ":(exclude)adr", cwd=where
    )
    return GitInfo(commit=commit, branch=branch, worktree_is_dirty=bool(status))
