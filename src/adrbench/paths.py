"""Portable names for files: how results name a model or a dataset without this machine's paths.

A results file is evidence read on other machines, so it never records an absolute path (a
virtualenv's site-packages, a scratch folder, a home directory). A path inside the repository is
named relative to it; any other absolute path by its folder name; a relative path or a hub id as
given. Scenario fingerprints use the same name, so where a model lies on disk never changes them.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["is_absolute_path", "portable_name"]


def is_absolute_path(text: str) -> bool:
    """True for a POSIX, Windows or home-relative absolute path (``/x``, ``C:\\x``, ``~/x``)."""
    return (
        text.startswith("~")
        or PurePosixPath(text).is_absolute()
        or PureWindowsPath(text).is_absolute()
    )


def portable_name(text: str, root: Path | None = None) -> str:
    """``text`` without machine paths: relative to ``root`` when inside it, else its folder name.

    Args:
        text: A hub id, ``default``, a relative path or an absolute path.
        root: The repository root, if known (a path inside it is kept relative to it).
    """
    if not is_absolute_path(text):
        return text
    if root is not None and not text.startswith("~"):
        try:
            relative = Path(os.path.abspath(text)).relative_to(Path(os.path.abspath(root)))
        except ValueError:
            pass
        else:
            return relative.as_posix() or "."
    posix = text.replace("\\", "/").rstrip("/")
    return posix.rsplit("/", 1)[-1] or posix
