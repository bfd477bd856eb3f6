"""Where runs live on disk: ``results/runs/<run_id>.json`` plus a pytest-benchmark JSON beside it.

Writes are atomic (temporary file, then a hard link that fails if the name exists), so a crash
never leaves half a file and an earlier run is never overwritten. Run ids start with the UTC start
time, so "latest" is simply the greatest id.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adrbench.errors import ResultsError, excerpt
from adrbench.results.names import confined, name_problem
from adrbench.results.record import RunRecord, Status, run_from_json, run_to_json

__all__ = [
    "DEFAULT_RESULTS_DIR",
    "MAX_IMPORT_BYTES",
    "PROFILE_PRECEDENCE",
    "Rewrite",
    "evidence_run",
    "import_runs",
    "iter_runs",
    "latest_per_environment",
    "latest_run",
    "load_run",
    "plan_upgrade",
    "refuse_interrupted",
    "resolve_run",
    "run_path",
    "runs_dir",
    "to_pytest_benchmark",
    "upgrade_files",
    "write_run",
]

DEFAULT_RESULTS_DIR = Path("results")

# The largest file `adrbench import` takes unless told otherwise (--max-size): 16 MiB, about 15x
# the largest run adrbench has written (a 12-scenario, 3-seed speed_levers run: 1.1 MB).
MAX_IMPORT_BYTES = 16 * 2**20

# Which profile's run is evidence when an environment has several: full epochs with full
# evaluation sets beat the quick CI profile; any other profile ranks after these.
PROFILE_PRECEDENCE = ("full", "quick")


def _profile_rank(run: RunRecord) -> int:
    try:
        return PROFILE_PRECEDENCE.index(run.profile)
    except ValueError:
        return len(PROFILE_PRECEDENCE)


def runs_dir(results_dir: Path) -> Path:
    return results_dir / "runs"


def run_path(results_dir: Path, run_id: str) -> Path:
    """``results_dir/runs/<run_id>.json``, once ``run_id`` is checked to name a file there.

    Raises:
        ResultsError: an id that breaks the naming rule (:mod:`adrbench.results.names`).
    """
    problem = name_problem(run_id)
    if problem is not None:
        raise ResultsError(
            f"run id {excerpt(run_id)} cannot name a results file: {problem}; name a run by "
            "the id `adrbench run` printed, or by its file"
        )
    return runs_dir(results_dir) / f"{run_id}.json"


def _run_files(run: RunRecord, results_dir: Path) -> list[tuple[Path, str]]:
    """The run's file and its pytest-benchmark twin, with their text, each checked to lie in
    ``results_dir/runs/`` (nothing is created yet)."""
    path = run_path(results_dir, run.run_id)
    twin = path.with_name(f"{run.run_id}.benchmark.json")
    files = [(path, run_to_json(run)), (twin, _twin_text(run))]
    for file, _text in files:
        try:
            confined(file, runs_dir(results_dir))
        except ValueError as error:
            raise ResultsError(
                f"{error}; a run is only ever written into its runs/ folder"
            ) from None
    return files


def _twin_text(run: RunRecord) -> str:
    """The run's pytest-benchmark twin, as written beside it."""
    return json.dumps(to_pytest_benchmark(run), indent=2, sort_keys=True) + "\n"


def _write_all(files: Sequence[tuple[Path, str]]) -> None:
    """Write every file new, or none: a failure part-way removes what this call wrote.

    Raises:
        ResultsError: a file already exists, or the filesystem refused one (named).
    """
    written: list[Path] = []
    path = None
    try:
        for path, text in files:
            _write_new(path, text)
            written.append(path)
    except BaseException as error:
        for done in written:
            done.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise ResultsError(
                f"{path}: cannot be written ({error.strerror or error}); check the folder's "
                "permissions and free space"
            ) from None
        raise


def _write_new(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are shared, like any file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # atomic and refuses to replace an existing file
        except FileExistsError:
            raise ResultsError(
                f"{path}: already exists; run ids are unique, so this is a second writer — "
                "rerun to get a fresh run id"
            ) from None
    finally:
        os.unlink(tmp)


def write_run(run: RunRecord, results_dir: Path = DEFAULT_RESULTS_DIR) -> Path:
    """Write the run and its pytest-benchmark twin (both or neither); returns the run's path."""
    files = _run_files(run, results_dir)
    _write_all(files)
    return files[0][0]


def _replace(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (temporary file, then rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, path.stat().st_mode & 0o777)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@dataclass(frozen=True, slots=True)
class Rewrite:
    """One file :func:`upgrade_files` replaces: its path, its text now and its text after."""

    path: Path
    before: str
    after: str


def plan_upgrade(path: Path) -> list[Rewrite]:
    """What rewriting a run file (and its pytest-benchmark twin, if beside it) in the current
    schema would change; nothing is written.

    The file goes through the ``update_to_N`` migrations; no measurement is touched (migrations
    only add derived fields and rename or drop provenance).

    Raises:
        ResultsError: the file (or its twin) cannot be read or migrated.
    """
    run = load_run(path)
    rewrites = []
    before = path.read_text(encoding="utf-8")
    if before != (text := run_to_json(run)):
        rewrites.append(Rewrite(path, before, text))
    twin = path.with_name(f"{path.name.removesuffix('.json')}.benchmark.json")
    if twin.is_file():
        twin_text = _twin_text(run)
        try:
            twin_before = twin.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            twin_before = ""  # regenerated from the run, whatever it held
        if twin_before != twin_text:
            rewrites.append(Rewrite(twin, twin_before, twin_text))
    return rewrites


def upgrade_files(rewrites: Sequence[Rewrite]) -> None:
    """Apply planned rewrites all or none: when one fails, those done are put back.

    Raises:
        ResultsError: the filesystem refused a file (named); every file is as it was.
    """
    done: list[Rewrite] = []
    try:
        for rewrite in rewrites:
            _replace(rewrite.path, rewrite.after)
            done.append(rewrite)
    except OSError as error:
        for rewrite in reversed(done):
            _replace(rewrite.path, rewrite.before)
        raise ResultsError(
            f"{error.filename or rewrite.path}: cannot be rewritten ({error.strerror or error}); "
            "nothing was changed — check the folder's permissions and free space"
        ) from None


def _same_run(a: RunRecord, b: RunRecord) -> bool:
    return (
        a.started_at == b.started_at
        and a.environment.fingerprint == b.environment.fingerprint
        and a.suite == b.suite
        and a.profile == b.profile
    )


def _check_size(path: Path, max_bytes: int) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file; check the path") from None
    if path.is_dir():
        raise ResultsError(f"{path}: is a folder; name the run files in it (e.g. {path}/*.json)")
    if size > max_bytes:
        raise ResultsError(
            f"{path}: {size} bytes, more than the import limit of {max_bytes} bytes (the largest "
            "run adrbench has written is ~1 MB); if the file is genuine, raise the limit with "
            "--max-size, e.g. --max-size 256MiB"
        )


def import_runs(
    paths: Sequence[Path],
    results_dir: Path = DEFAULT_RESULTS_DIR,
    *,
    max_bytes: int = MAX_IMPORT_BYTES,
) -> list[Path]:
    """Validate runs made elsewhere and file them under ``results_dir/runs/``; returns the paths.

    Each file must be at most ``max_bytes`` long, is parsed (older schemas migrated, newer
    refused; a run id that could not name a file in ``runs/`` refused), must name its
    environment and must not be in ``results_dir`` already (same run id, or the same start,
    environment, suite and profile under another id). Every file is checked before any is
    written, and the writes are all or nothing, so a bad one imports nothing. Measurements are
    written as they are; the pytest-benchmark twin is regenerated.

    Raises:
        ResultsError: one sentence naming the file, the problem and the fix.
    """
    existing = [load_run(p) for p in iter_runs(results_dir)]
    accepted: list[RunRecord] = []
    for path in paths:
        if path.name.endswith(".benchmark.json"):
            raise ResultsError(
                f"{path}: a pytest-benchmark twin, not a run; import the run file beside it "
                "(its twin is regenerated from the run)"
            )
        _check_size(path, max_bytes)
        run = load_run(path)
        if not run.environment.fingerprint.strip():
            raise ResultsError(
                f"{path}: environment.fingerprint is empty; a run must say which machine made it"
            )
        if not run.scenarios:
            raise ResultsError(f"{path}: the run has no scenarios; nothing to import")
        for other in [*existing, *accepted]:
            if other.run_id == run.run_id or _same_run(other, run):
                raise ResultsError(
                    f"{path}: run {run.run_id} is already in {runs_dir(results_dir)} (as "
                    f"{other.run_id}); nothing to import"
                )
        accepted.append(run)
    files = [file for run in accepted for file in _run_files(run, results_dir)]
    _write_all(files)
    return [run_path(results_dir, run.run_id) for run in accepted]


def load_run(path: Path) -> RunRecord:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file; run `adrbench run` first") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not UTF-8 text; restore it from git or delete it") from None
    return run_from_json(text, source=path)


def iter_runs(results_dir: Path = DEFAULT_RESULTS_DIR) -> Iterator[Path]:
    """Run files, oldest first (pytest-benchmark twins and temporary files excluded)."""
    directory = runs_dir(results_dir)
    if not directory.is_dir():
        return iter(())
    paths = [
        p
        for p in directory.glob("*.json")
        if not p.name.endswith(".benchmark.json") and not p.name.startswith(".")
    ]
    return iter(sorted(paths, key=lambda p: p.name))


def _newest_first(
    results_dir: Path,
    *,
    suite: str | None,
    profile: str | None,
    include_interrupted: bool = False,
) -> Iterator[RunRecord]:
    """Runs of ``suite`` / ``profile`` (None: any), newest first; each file is parsed, so a corrupt
    one is an error, never silently passed over. An interrupted run is passed over unless
    ``include_interrupted``: a run stopped on purpose is not evidence."""
    for path in reversed(list(iter_runs(results_dir))):
        run = load_run(path)
        if run.interrupted is not None and not include_interrupted:
            continue
        if (suite is None or run.suite == suite) and (profile is None or run.profile == profile):
            yield run


def refuse_interrupted(run: RunRecord, named: str, *, include_interrupted: bool) -> RunRecord:
    """``run``, unless it was interrupted and ``include_interrupted`` is not set.

    Args:
        run: A run named on the command line.
        named: How it was named (for the message).
        include_interrupted: The user asked for interrupted runs too.

    Raises:
        ResultsError: it was interrupted; the message says how to use it anyway.
    """
    if run.interrupted is None or include_interrupted:
        return run
    canceled = sum(1 for r in run.scenarios for rep in r.samples() if rep.status is Status.CANCELED)
    raise ResultsError(
        f"{named}: run {run.run_id} was interrupted ({run.interrupted.signal or 'by a signal'}; "
        f"{canceled} scenario runs canceled), so it is not evidence; rerun the suite, or pass "
        "--include-interrupted to use what finished"
    )


def latest_run(
    results_dir: Path = DEFAULT_RESULTS_DIR,
    *,
    suite: str | None = None,
    profile: str | None = None,
    environment: str | None = None,
    include_interrupted: bool = False,
) -> RunRecord | None:
    """The newest run matching the filters (suite, profile, environment fingerprint), or None.

    Every candidate is parsed: a corrupt file is an error, never silently passed over. An
    interrupted run counts only with ``include_interrupted``.
    """
    for run in _newest_first(
        results_dir, suite=suite, profile=profile, include_interrupted=include_interrupted
    ):
        if environment is None or run.environment.fingerprint == environment:
            return run
    return None


def resolve_run(
    spec: str | None,
    results_dir: Path = DEFAULT_RESULTS_DIR,
    *,
    include_interrupted: bool = False,
) -> RunRecord:
    """A run named on the command line: a run file, a results folder (its newest run), a run id,
    or None/"latest" for the newest run in ``results_dir``.

    "Newest" passes interrupted runs over, and one named outright is refused, unless
    ``include_interrupted``.
    """
    if spec is None or spec == "latest":
        run = latest_run(results_dir, include_interrupted=include_interrupted)
        if run is None:
            raise ResultsError(
                f"{runs_dir(results_dir)}: no finished runs yet; run `adrbench run` (or "
                "`tox -e bench`)"
            )
        return run
    candidate = Path(spec)
    if candidate.is_dir():
        return resolve_run(None, candidate, include_interrupted=include_interrupted)
    if candidate.suffix == ".json" or candidate.exists():
        run = load_run(candidate)
    else:
        run = load_run(run_path(results_dir, spec))
    return refuse_interrupted(run, spec, include_interrupted=include_interrupted)


def _benchmark_stats(times: list[float]) -> dict[str, Any]:
    """pytest-benchmark's ``stats`` of one benchmark's rounds."""
    import statistics

    ordered = sorted(times)
    n = len(ordered)
    q1, q3 = ordered[n // 4], ordered[(3 * n) // 4]
    mean = statistics.fmean(times)
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": mean,
        "stddev": statistics.stdev(times) if n > 1 else 0.0,
        "rounds": n,
        "median": statistics.median(times),
        "iqr": q3 - q1,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": 0,
        "stddev_outliers": 0,
        "outliers": "0;0",
        "ld15iqr": ordered[0],
        "hd15iqr": ordered[-1],
        "ops": 1.0 / mean if mean else 0.0,
        "total": sum(times),
        "data": times,
        "iterations": 1,
    }


def to_pytest_benchmark(run: RunRecord) -> dict[str, Any]:
    """The run's step times in pytest-benchmark's ``--benchmark-json`` layout.

    One benchmark per ``ok`` scenario, timing one training step (a serving scenario: one request
    on one variant); skipped and failed scenarios have no timings and are listed under
    ``adrbench_not_measured`` so they are not lost.
    """
    env = run.environment
    benchmarks: list[dict[str, Any]] = []
    not_measured: list[dict[str, str]] = []
    for result in run.scenarios:
        if result.status is not Status.OK:
            why = (
                result.skip.reason
                if result.skip
                else (result.failure.kind.value if result.failure else "unknown")
            )
            not_measured.append({"name": result.name, "status": result.status.value, "why": why})
            continue
        if result.metrics is not None:
            what, times = "train_step", list(result.metrics.throughput.step_times_s)
            extra: dict[str, Any] = {
                "samples_per_s": result.metrics.throughput.samples_per_s,
                "real_tokens_per_s": result.metrics.throughput.real_tokens_per_s,
                "peak_rss_bytes": result.metrics.memory.peak_rss_bytes,
            }
        elif result.serving is not None:
            what, times = "serve_request", list(result.serving.encode_times_s)
            extra = {
                "variants": result.serving.adapters,
                "resident_bytes": result.serving.resident_bytes,
                "memory_source": result.serving.memory_source,
            }
        else:
            continue
        if not times:
            continue
        benchmarks.append(
            {
                "group": run.suite,
                "name": f"{what}[{result.name}]",
                "fullname": f"{run.suite}::{what}[{result.name}]",
                "params": {"scenario": result.name},
                "param": result.name,
                "extra_info": {**extra, "fingerprint": result.fingerprint},
                "options": {"timer": "time.perf_counter", "warmup": True},
                "stats": _benchmark_stats(times),
            }
        )
    return {
        "machine_info": {
            "node": env.fingerprint,
            "processor": env.cpu_model,
            "machine": env.device_kind,
            "python_version": env.python,
            "system": env.os,
            "cpu": {"count": env.cores, "brand_raw": env.cpu_model},
        },
        "commit_info": {
            "id": run.git.commit,
            "branch": run.git.branch,
            "dirty": run.git.worktree_is_dirty,
            "time": run.started_at,
        },
        "benchmarks": benchmarks,
        "datetime": run.started_at,
        "version": "5.1.0",
        "adrbench_run_id": run.run_id,
        "adrbench_not_measured": not_measured,
    }


def latest_per_environment(
    results_dir: Path = DEFAULT_RESULTS_DIR,
    *,
    suite: str | None = None,
    profile: str | None = None,
    include_interrupted: bool = False,
) -> list[RunRecord]:
    """The evidence run of each environment (by ``environment.fingerprint``): the newest run of
    its most thorough profile (:data:`PROFILE_PRECEDENCE`), sorted by fingerprint; interrupted
    runs only with ``include_interrupted``.

    Reports show several machines side by side (a CUDA box, an M2 Mac, CPU CI); sorting by the
    fingerprint rather than by time keeps each machine's column where it was when a newer run
    arrives. Every file is parsed: a corrupt one is an error, never passed over.

    Args:
        results_dir: The results directory (holding ``runs/``).
        suite: Only runs of this suite, if given.
        profile: Only runs of this profile, if given.
        include_interrupted: Count runs a signal stopped part-way too.
    """
    best: dict[str, RunRecord] = {}
    for run in _newest_first(
        results_dir, suite=suite, profile=profile, include_interrupted=include_interrupted
    ):
        held = best.get(run.environment.fingerprint)
        if held is None or _profile_rank(run) < _profile_rank(held):
            best[run.environment.fingerprint] = run
    return [best[fingerprint] for fingerprint in sorted(best)]


def evidence_run(
    results_dir: Path = DEFAULT_RESULTS_DIR,
    *,
    suite: str | None = None,
    environment: str | None = None,
    include_interrupted: bool = False,
) -> RunRecord | None:
    """The run that stands as evidence for one environment: the newest run of the most thorough
    profile (see :data:`PROFILE_PRECEDENCE`), so a quick CI run never displaces a full epoch; an
    interrupted run never does either, unless ``include_interrupted``."""
    for run in latest_per_environment(
        results_dir, suite=suite, include_interrupted=include_interrupted
    ):
        if environment is None or run.environment.fingerprint == environment:
            return run
    return None
