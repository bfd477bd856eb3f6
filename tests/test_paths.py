"""Portable names: results never record this machine's absolute paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from adrbench.engine.scenario import Scenario
from adrbench.paths import is_absolute_path, portable_name


@pytest.mark.parametrize(
    ("given", "root", "expected"),
    [
        ("default", None, "default"),
        ("sentence-transformers/all-MiniLM-L6-v2", None, "sentence-transformers/all-MiniLM-L6-v2"),
        ("models/mini", None, "models/mini"),
        ("/tmp/model", None, "model"),
        ("/tmp/model/", None, "model"),
        ("/repo/models/mini", Path("/repo"), "models/mini"),
        ("/elsewhere/mini", Path("/repo"), "mini"),
        ("~/cache/mini", Path("/repo"), "mini"),
        ("C:\\Users\\me\\mini", None, "mini"),
    ],
)
def test_portable_name(given: str, root: Path | None, expected: str) -> None:
    assert portable_name(given, root) == expected


def test_hub_ids_are_not_paths() -> None:
    assert not is_absolute_path("sentence-transformers/all-MiniLM-L6-v2")
    assert is_absolute_path("/tmp/model") and is_absolute_path("~/x")


def test_scenario_fingerprint_does_not_depend_on_where_the_model_lies() -> None:
    # GIVEN one scenario with its model in two scratch folders, and with the default model
    a = Scenario(name="lora", method="lora", model="/tmp/model")
    b = Scenario(name="lora", method="lora", model="/scratch/user/model")
    named = Scenario(name="lora", method="lora", model="model")
    default = Scenario(name="lora", method="lora")
    # THEN the location does not enter the fingerprint, but which model it is does
    assert a.fingerprint() == b.fingerprint() == named.fingerprint()
    assert a.fingerprint() != default.fingerprint()
