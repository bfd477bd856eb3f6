"""Numbers with suffixes, both ways: ``7B`` <-> 7e9, ``8GiB`` <-> 8 * 2**30, ``90%`` <-> 0.9.

Shared by the trigger expressions (parsing) and the reports (formatting), so an ADR that says
``model.parameters >= 7B`` and a report that prints ``22.7M`` use the same vocabulary.
"""

from __future__ import annotations

import math
import re

from adrbench.errors import excerpt

__all__ = [
    "BYTE_SUFFIXES",
    "COUNT_SUFFIXES",
    "NotFinite",
    "format_bytes",
    "format_count",
    "parse_quantity",
]

COUNT_SUFFIXES: dict[str, float] = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
BYTE_SUFFIXES: dict[str, float] = {
    "KB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "TB": 1e12,
    "KiB": 2.0**10,
    "MiB": 2.0**20,
    "GiB": 2.0**30,
    "TiB": 2.0**40,
}
_ALL_SUFFIXES: dict[str, float] = {**COUNT_SUFFIXES, **BYTE_SUFFIXES, "%": 0.01}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z%]*)$")


class NotFinite(ValueError):
    """A number too large to hold (``1e400``): it would silently become infinity."""


def parse_quantity(text: str) -> float:
    """Parse ``"22.7M"``, ``"8GiB"``, ``"500MB"``, ``"90%"`` or a plain number.

    Raises:
        ValueError: naming the text and the suffixes that are understood; :class:`NotFinite`
            for a number beyond what a float holds (it would read as infinity).
    """
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise ValueError(f"not a number: {excerpt(text, 40)}")
    number, suffix = match.groups()
    if suffix and suffix not in _ALL_SUFFIXES:
        known = ", ".join(_ALL_SUFFIXES)
        raise ValueError(
            f"unknown suffix {suffix!r} in {excerpt(text, 40)}; known suffixes: {known}"
        )
    value = float(number) * _ALL_SUFFIXES.get(suffix, 1.0)
    if not math.isfinite(value):
        raise NotFinite(
            f"{excerpt(text, 40)} is too large to be a number here (it would be infinity); "
            "write a value below 1.7e308"
        )
    return value


def format_count(value: float) -> str:
    """``22713216`` -> ``"22.7M"``; three significant digits, the largest suffix that fits."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    for suffix, scale in sorted(COUNT_SUFFIXES.items(), key=lambda kv: -kv[1]):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def format_bytes(value: float) -> str:
    """``1_825_361_920`` -> ``"1.70 GiB"``; binary units, as memory is allocated in pages."""
    for suffix in ("TiB", "GiB", "MiB", "KiB"):
        scale = BYTE_SUFFIXES[suffix]
        if abs(value) >= scale:
            return f"{value / scale:.2f} {suffix}"
    return f"{value:.0f} B"
