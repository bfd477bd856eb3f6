"""MkDocs hook: put the command-line reference, generated from adrbench's own parsers, into
``reference/cli.md`` (where the page says ``<!-- adrbench:cli -->``).

Imported from ``src/`` so the docs env needs none of the training stack (tox.ini, ``docs``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parents[1] / "src")
MARKER = "<!-- adrbench:cli -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    if SRC not in sys.path:  # here, not at import: mkdocs restores sys.path after loading hooks
        sys.path.insert(0, SRC)
    from adrbench.cli_reference import cli_reference, missing_help

    missing = missing_help()
    if missing:  # a build with an undocumented option fails (mkdocs reports the exception)
        raise ValueError(f"options without help text: {', '.join(missing)}")
    return markdown.replace(MARKER, cli_reference())
