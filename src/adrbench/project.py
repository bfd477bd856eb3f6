"""The project: its root folder, found from any subdirectory as git does, and its settings.

The root is the nearest folder, from the current one upwards, that holds a ``pyproject.toml``
with a ``[tool.adrbench]`` table, or both an ``adr/`` and a ``results/`` folder. The commands'
default paths (``adr``, ``results``, ``pyproject.toml``) are taken from there; paths the user
types stay relative to the current folder, as in any other tool.

``[tool.adrbench]`` settings read here (the gate's own section is read by ``gate/rules.py``)::

    [tool.adrbench]
    statuses = ["proposed", "accepted", "on hold"]   # statuses lint accepts without a warning
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from adrbench.errors import UserError

__all__ = ["DEFAULT_STATUSES", "Settings", "find_root", "load_settings"]

# MADR 4's statuses; "superseded by ADR-NNNN" is always accepted as well.
DEFAULT_STATUSES = ("proposed", "rejected", "accepted", "deprecated")
_SETTINGS_KEYS = ("statuses", "gate")


def _adrbench_table(pyproject: Path) -> Mapping[str, object] | None:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    table = data.get("tool", {}).get("adrbench")
    return table if isinstance(table, Mapping) else None


def _is_root(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file() and _adrbench_table(pyproject) is not None:
        return True
    return (folder / "adr").is_dir() and (folder / "results").is_dir()


def find_root(start: Path | None = None) -> Path | None:
    """The project root at or above ``start`` (default: the current folder), or None.

    Args:
        start: Where to start looking.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if _is_root(folder):
            return folder
    return None


@dataclass(frozen=True, slots=True)
class Settings:
    """``[tool.adrbench]`` of the project.

    Args:
        statuses: ADR statuses that lint accepts without a warning (lower-case).
        source: The file they came from (None: built-in defaults).
    """

    statuses: tuple[str, ...] = DEFAULT_STATUSES
    source: Path | None = None


def load_settings(pyproject: Path) -> Settings:
    """Read ``[tool.adrbench]`` from ``pyproject``; the defaults when it has none or no file.

    Raises:
        UserError: a ``statuses`` that is not a list of text, or an unknown key.
    """
    if not pyproject.is_file():
        return Settings()
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{pyproject}: not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{pyproject}: not valid TOML ({error})") from None
    table = data.get("tool", {}).get("adrbench")
    if not isinstance(table, Mapping):
        return Settings()
    unknown = sorted(set(table) - set(_SETTINGS_KEYS))
    if unknown:
        raise UserError(
            f"{pyproject}: [tool.adrbench] has an unknown key {unknown[0]!r}; "
            f"allowed: {', '.join(_SETTINGS_KEYS)}"
        )
    statuses = table.get("statuses", list(DEFAULT_STATUSES))
    if (
        not isinstance(statuses, list)
        or not statuses
        or not all(isinstance(s, str) and s.strip() for s in statuses)
    ):
        raise UserError(
            f"{pyproject}: [tool.adrbench] statuses = {statuses!r} must be a non-empty list of "
            'status names, e.g. ["proposed", "accepted", "on hold"]'
        )
    return Settings(tuple(s.strip().lower() for s in statuses), pyproject)
