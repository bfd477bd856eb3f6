"""The suite's own settings: property tests reproduce in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


@pytest.mark.parametrize(
    ("env", "derandomized"),
    [({"CI": "true"}, True), ({}, False), ({"CI": "true", "HYPOTHESIS_PROFILE": "dev"}, False)],
)
def test_hypothesis_is_derandomised_in_ci(env: dict[str, str], derandomized: bool) -> None:
    # GIVEN a fresh interpreter with or without CI=true WHEN the test settings load
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    code = "import conftest, hypothesis; print(hypothesis.settings.default.derandomize)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=TESTS,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # THEN CI gets the same examples every run, a developer new ones
    assert out.strip() == str(derandomized)
