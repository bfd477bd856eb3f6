"""Generated blocks inside hand-written files, between ``<!-- adrbench:NAME -->`` marker lines.

An ADR is prose a person owns; adrbench owns only the lines between its two markers. Replacing
the block never touches a byte outside it (line endings included), and a file without the block
gets it appended once at the end, so a second run finds and replaces it instead of adding another.

A marker is a line whose text, without surrounding whitespace, is exactly the marker, so the
marker quoted inside a sentence is left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from adrbench.errors import UserError

__all__ = ["EVIDENCE", "INDEX", "MarkerError", "Markers", "find_block", "replace_block"]


@dataclass(frozen=True, slots=True)
class Markers:
    """The pair of marker lines around one generated block.

    Args:
        name: The block's name, e.g. ``"evidence"``; the markers are ``<!-- adrbench:NAME -->``
            and ``<!-- /adrbench:NAME -->``.
    """

    name: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", self.name):
            raise ValueError(f"marker name {self.name!r} must be lowercase letters, digits, - or _")

    @property
    def begin(self) -> str:
        return f"<!-- adrbench:{self.name} -->"

    @property
    def end(self) -> str:
        return f"<!-- /adrbench:{self.name} -->"


EVIDENCE = Markers("evidence")
INDEX = Markers("index")


class MarkerError(UserError):
    """Markers that cannot be paired: the message shows the offending line with a caret."""

    def __init__(self, path: str, line: int, source_line: str, problem: str, fix: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        shown = source_line.rstrip("\r\n")
        indent = len(shown) - len(shown.lstrip())
        caret = " " * indent + "^" * max(1, len(shown.strip()))
        super().__init__(f"{path}:{line}: {problem}; {fix}\n    {shown}\n    {caret}")


def _lines(text: str) -> list[str]:
    """Lines with their endings kept, so joining them gives back ``text`` byte for byte."""
    return text.splitlines(keepends=True)


def find_block(text: str, markers: Markers, *, path: str = "<text>") -> tuple[int, int] | None:
    """Where the block is: (index of the begin line, index of the end line), or None if absent.

    Args:
        text: The whole file.
        markers: Which block.
        path: The file's name, for error messages.

    Raises:
        MarkerError: a marker without its partner, a repeated marker, or an end before a begin.
    """
    begins: list[int] = []
    ends: list[int] = []
    lines = _lines(text)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped == markers.begin:
            begins.append(index)
        elif stripped == markers.end:
            ends.append(index)
    fix = (
        f"keep exactly one {markers.begin!r} line followed by one {markers.end!r} line, or delete "
        "both and rerun `adrbench report`"
    )
    if not begins and not ends:
        return None
    if len(begins) > 1:
        raise MarkerError(path, begins[1] + 1, lines[begins[1]], "second begin marker", fix)
    if len(ends) > 1:
        raise MarkerError(path, ends[1] + 1, lines[ends[1]], "second end marker", fix)
    if not ends:
        raise MarkerError(path, begins[0] + 1, lines[begins[0]], "begin marker without end", fix)
    if not begins:
        raise MarkerError(path, ends[0] + 1, lines[ends[0]], "end marker without begin", fix)
    if ends[0] < begins[0]:
        raise MarkerError(path, ends[0] + 1, lines[ends[0]], "end marker before begin", fix)
    return begins[0], ends[0]


def replace_block(text: str, body: str, markers: Markers, *, path: str = "<text>") -> str:
    """``text`` with the block's content set to ``body``; everything outside is kept as is.

    Args:
        text: The whole file (decoded as is, ``\\r\\n`` kept).
        body: The new content between the markers; a trailing newline is added if missing.
        markers: Which block.
        path: The file's name, for error messages.

    Returns:
        The new text. Without a block, ``text`` is kept as a prefix and the block is appended
        after a blank line.

    Raises:
        MarkerError: see :func:`find_block`.
    """
    if body and not body.endswith("\n"):
        body += "\n"
    span = find_block(text, markers, path=path)
    if span is None:
        separator = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
        return f"{text}{separator}{markers.begin}\n{body}{markers.end}\n"
    lines = _lines(text)
    begin, end = span
    # The begin line always has an ending (the end marker follows it), and keeps its own.
    return "".join(lines[: begin + 1]) + body + "".join(lines[end:])
