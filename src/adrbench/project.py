"""The project: its root folder, found from any subdirectory as git does, and its settings.

The root is the nearest folder, from the current one upwards, that holds a ``pyproject.toml``
with a ``[tool.adrbench]`` table, or both an ``adr/`` and a ``results/`` folder. The commands'
default paths (``adr``, ``results``, ``pyproject.toml``) are taken from there; paths the user
types stay relative to the current folder, as in any other tool.

``[tool.adrbench]`` settings read here (the gate's own section is read by ``gate/rules.py``)::

    [tool.adrbench]
    statuses = ["proposed", "accepted", "on hold"]   # statuses lint accepts without a warning

    [tool.adrbench.facts]        # what the project declares about itself, as project.<name>
    adapters_served = 1          # LoRA adapters served from one base model (an integer >= 1)

Declared facts are what no measurement can know: how the project uses its models. Each is a
boolean, a number or text under a lower-case name, read by claims and triggers as
``project.<name>``; the names in :data:`KNOWN_FACTS` must also satisfy their own rule.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adrbench.errors import UserError, excerpt

__all__ = [
    "DEFAULT_STATUSES",
    "KNOWN_FACTS",
    "DeclaredValue",
    "Settings",
    "declared_facts",
    "find_root",
    "load_settings",
]

# MADR 4's statuses; "superseded by ADR-NNNN" is always accepted as well.
DEFAULT_STATUSES = ("proposed", "rejected", "accepted", "deprecated")
_SETTINGS_KEYS = ("statuses", "gate", "facts")
_FACT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

DeclaredValue = bool | float | str


def _count_at_least_one(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return "must be an integer >= 1"
    return None


# Declared facts that adrbench's own ADRs read: name -> (what it means, its rule, an example).
KNOWN_FACTS: Mapping[str, tuple[str, Callable[[object], str | None], str]] = {
    "adapters_served": (
        "how many LoRA adapters the project serves from one base model",
        _count_at_least_one,
        "adapters_served = 1",
    ),
}


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
        facts: ``[tool.adrbench.facts]``: name -> value (a TOML integer as a float).
    """

    statuses: tuple[str, ...] = DEFAULT_STATUSES
    source: Path | None = None
    facts: Mapping[str, DeclaredValue] = field(default_factory=dict)


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
    facts = _declared(pyproject, table.get("facts", {}))
    return Settings(tuple(s.strip().lower() for s in statuses), pyproject, facts)


def _declared(pyproject: Path, table: object) -> dict[str, DeclaredValue]:
    """``[tool.adrbench.facts]``, validated: one clear error for the first bad entry."""
    where = f"{pyproject}: [tool.adrbench.facts]"
    if not isinstance(table, Mapping):
        raise UserError(f"{where} must be a table of name = value, e.g. adapters_served = 1")
    facts: dict[str, DeclaredValue] = {}
    for name, value in table.items():
        if not _FACT_NAME.match(name):
            raise UserError(
                f"{where}: fact name {excerpt(name)} must be lower-case letters, digits and _ "
                "(starting with a letter, at most 64), e.g. adapters_served"
            )
        known = KNOWN_FACTS.get(name)
        problem = known[1](value) if known else None
        if problem is None and not (isinstance(value, bool | int | float | str)):
            problem = "must be a boolean, a number or text"
        if problem is None and isinstance(value, float) and not math.isfinite(value):
            problem = "must be a finite number"
        if problem is not None:
            meaning = f" ({known[0]})" if known else ""
            example = known[2] if known else f"{name} = 1"
            raise UserError(
                f"{where}: {name} = {excerpt(value)} {problem}{meaning}; write e.g. {example}"
            )
        assert isinstance(value, bool | int | float | str)
        facts[name] = value if isinstance(value, bool | str) else float(value)
    return facts


def declared_facts(adr_dir: Path) -> Mapping[str, DeclaredValue]:
    """The facts the project that ``adr_dir`` belongs to declares (none outside a project).

    Raises:
        UserError: a bad ``[tool.adrbench]`` (see :func:`load_settings`).
    """
    root = find_root(adr_dir if adr_dir.is_dir() else adr_dir.parent)
    if root is None:
        return {}
    return load_settings(root / "pyproject.toml").facts
