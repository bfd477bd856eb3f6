"""The relative gate: measure a reference commit and the working tree in one job, interleaved.

A committed baseline was measured on another day, often on another machine of the same
fingerprint, and machines of one fingerprint have differed by up to ~13% in step time between
sessions: as large as the regressions CI must catch. So, like ``asv continuous``, the relative
gate measures both sides here and now:

1. REF (a commit, a branch, or ``@baseline``: the commit the committed baseline was measured at)
   is checked out into a temporary ``git worktree``;
2. the suite of the *working tree* (one definition of the workload for both sides) runs as
   ``adrbench run`` once per side and pair, each in fresh processes, in counterbalanced
   interleaved order (``ref cur | cur ref | ref cur ...``), so a slow drift of the machine hits
   both sides alike; REF's code is imported from its worktree (``PYTHONPATH``), in this same
   environment;
3. the gate's rules judge the pairs together (:func:`adrbench.gate.rules.evaluate_paired`).

What it does not catch: a change of the installed packages (both sides share one environment);
for a dependency upgrade, measure each environment into its own results folder and gate the two
runs with ``adrbench gate --baseline RUN --current RUN`` (docs/reference/gate-rules.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from adrbench.errors import UserError
from adrbench.results.record import RunRecord
from adrbench.results.store import latest_run

__all__ = [
    "BASELINE_REF",
    "RelativeGateError",
    "ResolvedRef",
    "Side",
    "SideRunner",
    "checkout",
    "interleaved_order",
    "measure_pairs",
    "resolve_ref",
    "subprocess_runner",
]

BASELINE_REF = "@baseline"


class RelativeGateError(UserError):
    """The reference cannot be checked out or measured."""


@dataclass(frozen=True, slots=True)
class ResolvedRef:
    """A reference resolved to a commit.

    Args:
        spec: What the user wrote (``main``, ``HEAD~1``, ``@baseline``).
        commit: The full commit hash.
        how: One phrase saying how it was resolved, for the report.
    """

    spec: str
    commit: str
    how: str

    def describe(self) -> str:
        return f"{self.spec} = {self.commit[:12]}{f' ({self.how})' if self.how else ''}"


@dataclass(frozen=True, slots=True)
class Side:
    """One side of the comparison.

    Args:
        label: ``ref`` or ``current``.
        root: The tree whose ``src/`` is imported (a worktree for REF, the project for current).
        sets: ``--set`` overrides for this side only (injected regressions in the noise study).
    """

    label: str
    root: Path
    sets: tuple[str, ...] = ()


class SideRunner(Protocol):
    """Runs the suite once for one side into ``results_dir`` and returns the run it recorded."""

    def __call__(self, side: Side, index: int, results_dir: Path) -> RunRecord: ...


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, timeout=120, check=False
    )


def resolve_ref(spec: str, repo: Path, *, baseline_commit: str | None = None) -> ResolvedRef:
    """The commit ``spec`` names in ``repo``.

    Args:
        spec: A commit, branch or other revision, or ``@baseline``.
        repo: The repository.
        baseline_commit: For ``@baseline``: the commit the committed baseline was measured at
            (None when there is no such baseline, or it was measured on a dirty tree).

    Raises:
        RelativeGateError: not a repository, an unknown revision, no usable baseline commit.
    """
    if spec == BASELINE_REF:
        if baseline_commit is None:
            raise RelativeGateError(
                f"--against {BASELINE_REF}: no committed baseline for this suite and profile "
                "names a clean commit; record one (adrbench baseline update) or pass a revision, "
                "e.g. --against HEAD~1 or --against origin/main"
            )
        target, how = baseline_commit, "the commit the committed baseline was measured at"
    else:
        target, how = spec, ""
    if _git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise RelativeGateError(
            f"{repo}: not a git repository; the relative gate checks REF out with git worktree"
        )
    found = _git(repo, "rev-parse", "--verify", "--quiet", f"{target}^{{commit}}")
    if found.returncode != 0 or not found.stdout.strip():
        shallow = _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        hint = (
            "this clone is shallow: git fetch --unshallow, or pass a newer REF"
            if shallow
            else "pass a commit, branch or tag of this repository, e.g. HEAD~1 or main"
        )
        raise RelativeGateError(f"--against {spec}: {target!r} is not a commit here; {hint}")
    return ResolvedRef(spec=spec, commit=found.stdout.strip(), how=how)


@contextlib.contextmanager
def checkout(repo: Path, commit: str) -> Iterator[Path]:
    """Check ``commit`` out into a temporary detached worktree; remove it afterwards.

    Raises:
        RelativeGateError: git could not create the worktree (its message is quoted).
    """
    parent = Path(tempfile.mkdtemp(prefix="adrbench-ref-"))
    tree = parent / "ref"
    made = _git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
    if made.returncode != 0:
        shutil.rmtree(parent, ignore_errors=True)
        raise RelativeGateError(
            f"git worktree add {commit[:12]} failed: {made.stderr.strip() or made.stdout.strip()}"
        )
    try:
        yield tree
    finally:
        _git(repo, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(parent, ignore_errors=True)
        _git(repo, "worktree", "prune")


def interleaved_order(pairs: int) -> list[tuple[str, int]]:
    """``(side, index)`` in run order: ref, cur | cur, ref | ref, cur ... (counterbalanced, so
    neither side is always first after the other: a linear drift cancels over two pairs)."""
    order: list[tuple[str, int]] = []
    for i in range(pairs):
        first, second = ("ref", "current") if i % 2 == 0 else ("current", "ref")
        order += [(first, i), (second, i)]
    return order


def measure_pairs(
    ref: Side,
    current: Side,
    pairs: int,
    run_side: SideRunner,
    work_dir: Path,
    *,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> tuple[list[RunRecord], list[RunRecord]]:
    """Run both sides ``pairs`` times each in interleaved order; their runs, pair by pair.

    Args:
        ref: The reference side.
        current: The side under test.
        pairs: Processes per side (at least 2: one pair cannot tell a process from a change).
        run_side: What runs one side once (:func:`subprocess_runner`, or a fake in tests).
        work_dir: Each run records into ``work_dir/<side>-<i>/``.
        log: Where progress lines go.
    """
    if pairs < 2:
        raise RelativeGateError(
            f"--pairs {pairs}: the relative gate needs at least 2 processes a side (one process "
            "cannot tell its own noise from a change)"
        )
    sides = {"ref": ref, "current": current}
    runs: dict[str, list[RunRecord | None]] = {"ref": [None] * pairs, "current": [None] * pairs}
    order = interleaved_order(pairs)
    for n, (label, i) in enumerate(order, start=1):
        start = time.monotonic()
        record = run_side(sides[label], i, work_dir / f"{label}-{i + 1}")
        runs[label][i] = record
        log(
            f"[{n}/{len(order)}] {label} #{i + 1}: run {record.run_id} "
            f"({time.monotonic() - start:.0f} s)"
        )
    return (
        [r for r in runs["ref"] if r is not None],
        [r for r in runs["current"] if r is not None],
    )


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _side_environment(side: Side) -> dict[str, str]:
    """The environment one side's ``adrbench run`` gets.

    * ``PYTHONPATH``: the side's ``src/`` first, so its code measures.
    * ``ADRBENCH_STSB_DIR`` made absolute: the run starts in the side's tree (a REF worktree in
      a temporary folder), where a path relative to this folder names nothing.

    Which commit a side's runs record is settled by where its suite file lies (:func:`_suite_in`).
    """
    src = str((side.root / "src").resolve())
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": src if not path else f"{src}{os.pathsep}{path}"}
    data = env.get("ADRBENCH_STSB_DIR")
    if data:
        env["ADRBENCH_STSB_DIR"] = str(Path(data).resolve())
    return env


def _suite_in(side: Side, suite: Path) -> Path:
    """The suite file as ``side`` runs it: a copy at the same place in the side's own tree.

    ``adrbench run`` records the commit of the tree its suite file lies in; run from the
    working tree's file, REF's runs recorded this tree's commit beside REF's measuring code.
    With the file copied into REF's worktree (the same text, so both sides run one workload),
    they record REF's commit, and a dirty flag when the suite differs from REF's own.
    """
    root = side.root.resolve()
    if suite.is_relative_to(root):
        return suite
    top = _git(suite.parent, "rev-parse", "--show-toplevel")
    home = Path(top.stdout.strip()).resolve() if top.returncode == 0 else None
    if home is None or not suite.is_relative_to(home):
        return suite  # a suite outside any repository: nothing to place it beside
    copy = root / suite.relative_to(home)
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(suite, copy)
    return copy


def subprocess_runner(
    suite: Path,
    profile: str,
    *,
    data_dir: Path | None = None,
    only: Sequence[str] = (),
    sets: Sequence[str] = (),
    python: str = sys.executable,
) -> SideRunner:
    """A :class:`SideRunner` that runs ``adrbench run`` with the side's code on ``PYTHONPATH``.

    Every side runs the working tree's ``suite`` (REF's side a copy of it in REF's worktree, see
    :func:`_suite_in`), so a REF that cannot load it (a field its code does not know) is refused
    with its own error message.
    """
    suite = suite.resolve()

    def run_side(side: Side, index: int, results_dir: Path) -> RunRecord:
        results_dir.mkdir(parents=True, exist_ok=True)
        command = [
            python,
            "-c",
            "import sys; from adrbench.cli import main; sys.exit(main())",
            "run",
            str(_suite_in(side, suite)),
            "--profile",
            profile,
            "--results-dir",
            str(results_dir.resolve()),
        ]
        if data_dir is not None:
            command += ["--data-dir", str(data_dir.resolve())]
        for name in only:
            command += ["--only", name]
        for item in (*sets, *side.sets):
            command += ["--set", item]
        env = _side_environment(side)
        done = subprocess.run(
            command, cwd=side.root, env=env, capture_output=True, text=True, check=False
        )
        (results_dir / "adrbench-run.log").write_text(done.stdout + done.stderr, encoding="utf-8")
        record = latest_run(results_dir)
        if done.returncode not in (0, 1) or record is None:
            raise RelativeGateError(
                f"{side.label} side (tree {side.root}) could not run {suite} --profile {profile} "
                f"(exit {done.returncode}):\n{_tail(done.stderr or done.stdout)}\n"
                + (
                    "REF's side stopped (its output above says why): if the cause is this "
                    "machine (data, memory), fix that and rerun; if REF's code cannot run this "
                    "suite as written, gate against a newer REF (--against) or record a new "
                    "baseline"
                    if side.label == "ref"
                    else "fix the working tree's suite or code and rerun"
                )
            )
        return record

    return run_side
