"""Commands that train nothing import no training stack (behaviour, not timing: which modules a
fresh interpreter ends up holding)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAINING_STACK = ("torch", "transformers", "sentence_transformers", "peft", "scipy", "matplotlib")

_PROBE = """
import json, sys
from adrbench.cli import main
code = main(sys.argv[1:])
print(json.dumps([code, sorted(m for m in {stack} if m in sys.modules)]))
"""


def _imported(*argv: str) -> tuple[int, list[str]]:
    script = _PROBE.format(stack=TRAINING_STACK)
    done = subprocess.run(
        [sys.executable, "-c", script, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    code, modules = json.loads(done.stdout.strip().splitlines()[-1])
    return int(code), list(modules)


def test_importing_the_lint_command_imports_no_training_stack() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, adrbench.commands.lint, adrbench.commands.check; "
            f"print(sorted(m for m in {TRAINING_STACK} if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "argv", [("lint",), ("check", "--no-probes", "--results", "latest", "--format", "json")]
)
def test_lint_and_check_without_probes_import_no_training_stack(argv: tuple[str, ...]) -> None:
    code, modules = _imported(*argv)
    assert code in (0, 1)
    assert modules == []


def test_check_without_probes_finds_this_machine_without_torch_once_it_is_known() -> None:
    # GIVEN one check that has captured this machine (it imports torch the first time)
    _imported("check", "--no-probes", "--format", "json")
    # WHEN check runs again without naming a run THEN this machine comes from the cache
    code, modules = _imported("check", "--no-probes", "--format", "json")
    assert code in (0, 1)
    assert modules == []
