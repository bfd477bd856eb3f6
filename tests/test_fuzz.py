"""Fuzzing the inputs that travel between people: ADR front matter, expressions, results
documents and files given to ``adrbench import``.

The property for every generated input: each command ends with an exit status (0-3), never a
traceback, and writes nothing outside the project's ``results/`` and ``adr/``. Each example runs
the commands in-process in a fresh temporary project (``pyproject.toml``, ``adr/`` with one ADR,
``results/runs/`` with one valid run) and diffs the whole temporary folder, project and its
parent, before and after.

Example counts are set per test below; in CI (``CI=true``) the examples are derandomised
(``tests/conftest.py``), so a failure there reproduces. ``pytest tests/test_fuzz.py
--hypothesis-show-statistics`` prints how many inputs each test tried.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adrbench.cli import main
from adrbench.results.record import run_to_json
from factories import make_finetune_sts_run, make_run, make_serving

VALID_RUN = json.loads(run_to_json(make_finetune_sts_run()))
# A serving run (schema 6) with the training run's id, so the documents a test mutates are of
# both shapes: its ``serving`` records and ``serve`` tables are fuzzed too.
VALID_SERVING_RUN = json.loads(
    run_to_json(
        make_run(
            [make_serving("adapters_4", seeds=(42, 43)), make_serving("merged_4", merged=True)],
            run_id=VALID_RUN["run_id"],
            suite="finetune_sts",
        )
    )
)
ADR_TEMPLATE = """---
status: accepted
date: 2026-11-01
evidence: [finetune_sts]
claims:
  - id: fuzzed
    text: a claim
    holds_if: {expression}
---

# Fuzzed decision

Body.
"""
# Paths a command may write below the project: everything else must stay as it was.
OWNED = ("results/", "adr/")


def fuzz(examples: int) -> settings:
    """The settings of one fuzz test: ``examples`` inputs, no deadline (each runs commands)."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@contextlib.contextmanager
def _project() -> Iterator[Path]:
    """A fresh project in a temporary folder (the current folder inside the block)."""
    with tempfile.TemporaryDirectory(prefix="adrbench-fuzz-") as name:
        outer = Path(name)
        root = outer / "project"
        (root / "adr").mkdir(parents=True)
        (root / "results" / "runs").mkdir(parents=True)
        (root / "pyproject.toml").write_text("[tool.adrbench]\n", encoding="utf-8")
        run_id = VALID_RUN["run_id"]
        (root / "results" / "runs" / f"{run_id}.json").write_text(
            json.dumps(VALID_RUN), encoding="utf-8"
        )
        with contextlib.chdir(root):
            yield root


def _run_confined(root: Path, commands: Sequence[Sequence[str]]) -> list[int]:
    """Run each command in ``root``; its exit statuses. Fails on a traceback or on a write
    outside ``results/`` and ``adr/`` (anywhere in ``root``'s parent)."""
    outer = root.parent
    before = _snapshot(outer)
    codes = []
    for command in commands:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(command))
            except SystemExit as done:  # argparse: a bad option value
                code = done.code if isinstance(done.code, int) else 2
        assert code in (0, 1, 2, 3), (command, code, err.getvalue())
        assert "Traceback" not in err.getvalue()
        codes.append(code)
    after = _snapshot(outer)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    outside = sorted(p for p in changed if not p.startswith(tuple(f"project/{o}" for o in OWNED)))
    assert outside == [], f"{commands} wrote outside results/ and adr/: {outside}"
    return codes


# --- strategies ------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
hostile_ids = st.one_of(
    st.sampled_from(["", ".", "..", "../evil", "../../x/y", "/tmp/adrbench-fuzz-abs", "a\nb"]),
    st.text(max_size=200),
    st.from_regex(r"[A-Za-z0-9._/+-]{1,60}", fullmatch=True),
)
expression_text = st.one_of(
    st.text(
        alphabet=st.sampled_from(list("results.full.lora_abc_0123456789 ()<>=!+-*/%\"'&|~^,"))
    ).map(lambda s: s.strip() or "x"),
    st.lists(
        st.sampled_from(
            [
                "results.full.peak_memory_bytes",
                "results.lora.samples_per_s",
                "model.parameters",
                "env.cuda_available",
                "8GB",
                "7B",
                "1e400",
                "90%",
                "0.5",
                '"skipped"',
                "and",
                "or",
                "not",
                "<",
                ">=",
                "==",
                "+",
                "/",
                "*",
                "(",
                ")",
                "-",
            ]
        ),
        min_size=1,
        max_size=12,
    ).map(" ".join),
)


def _mutated_run(draw: Any) -> dict[str, Any]:
    """A valid run (training or serving) with one to three of its values replaced or removed."""
    data: dict[str, Any] = json.loads(
        json.dumps(draw(st.sampled_from([VALID_RUN, VALID_SERVING_RUN])))
    )
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        node: Any = data
        path: list[Any] = []
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            key = (
                draw(st.sampled_from(sorted(node)))
                if isinstance(node, dict)
                else draw(st.integers(min_value=0, max_value=len(node) - 1))
            )
            path.append(key)
            node = node[key]
        if not path:
            continue
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    if draw(st.booleans()):
        data["run_id"] = draw(hostile_ids)
    return data


mutated_runs = st.composite(lambda draw: _mutated_run(draw))()


# --- the fuzz tests --------------------------------------------------------------------------


@fuzz(60)
@given(
    front_matter=st.one_of(
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300),
        st.text(
            alphabet=st.sampled_from(list("ab:- []{}\n\"'&*!#|>%@`,?0123456789")), max_size=200
        ),
        st.dictionaries(
            st.sampled_from(
                [
                    "status",
                    "date",
                    "evidence",
                    "claims",
                    "revisit_when",
                    "premises",
                    "supersedes",
                    "superseded-by",
                    "decision-makers",
                    "x",
                ]
            ),
            json_values,
            max_size=6,
        ).map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    )
)
def test_adr_front_matter_never_tracebacks_or_writes_outside(front_matter: str) -> None:
    with _project() as root:
        (root / "adr" / "0001-fuzzed.md").write_text(
            f"---\n{front_matter}\n---\n\n# Fuzzed\n", encoding="utf-8"
        )
        _run_confined(
            root,
            [
                ["lint"],
                ["check", "--results", "latest", "--no-probes"],
                ["draft", "1", "--no-probes"],
            ],
        )


@fuzz(150)
@given(expression=expression_text)
def test_expressions_never_traceback_or_write_outside(expression: str) -> None:
    with _project() as root:
        (root / "adr" / "0001-fuzzed.md").write_text(
            ADR_TEMPLATE.format(expression=json.dumps(expression)), encoding="utf-8"
        )
        _run_confined(
            root,
            [
                ["lint"],
                ["check", "--results", "latest", "--no-probes"],
                ["check", "--results", "latest", "--no-probes", "--what-if", f"x={expression}"],
            ],
        )


@fuzz(60)
@given(run=mutated_runs)
def test_results_documents_never_traceback_or_write_outside(run: dict[str, Any]) -> None:
    with _project() as root:
        (root / "adr" / "0001-fuzzed.md").write_text(
            ADR_TEMPLATE.format(expression="results.full.samples_per_s > 0"), encoding="utf-8"
        )
        # A mutated run in runs/ itself, newer than the valid one (check reads it first) ...
        (root / "results" / "runs" / "29991231T000000Z-fuzzed.json").write_text(
            json.dumps(run), encoding="utf-8"
        )
        _run_confined(
            root,
            [
                ["check", "--results", "latest", "--no-probes"],
                ["check", "--no-probes", "--env", "cpu"],
                ["gate", "--current", "latest", "--baseline", VALID_RUN["run_id"]],
            ],
        )


@fuzz(100)
@given(
    payload=st.one_of(
        mutated_runs.map(lambda run: json.dumps(run).encode()),
        json_values.map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=200),
    ),
    twice=st.booleans(),
)
def test_import_inputs_never_traceback_or_write_outside(payload: bytes, twice: bool) -> None:
    with _project() as root:
        sent = root.parent / "sent.json"
        sent.write_bytes(payload)
        files = [str(sent), str(sent)] if twice else [str(sent)]
        codes = _run_confined(root, [["import", *files], ["migrate"]])
        if twice:
            assert codes[0] == 2  # the same run twice is a duplicate, so nothing is imported
        assert not Path("/tmp/adrbench-fuzz-abs").exists()
