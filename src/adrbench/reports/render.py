"""Markdown from results and verdicts: each ADR's appendix, its evidence block and the ADR index.

Everything above the "files" section is a pure function from typed inputs to text, so the
golden-file tests pin the exact bytes; below it, :func:`judge_for_report` judges each ADR on each
environment's latest run, :func:`plan_reports` computes every output file's bytes and
:func:`report_all` (behind ``adrbench report``) writes the ones that differ.

Numbers are formatted here (never in templates); tables are made with tabulate and laid out by
the jinja2 templates in ``adrbench/templates`` under ``StrictUndefined``: a missing value fails
the render instead of printing nothing.

Output is byte-stable: no timestamps other than those recorded in the results, environments in
fingerprint order, scenarios in suite order.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from tabulate import tabulate

from adrbench.decisions.evidence import adr_runs, evidence_runs, evidence_suites
from adrbench.decisions.staleness import Staleness
from adrbench.decisions.verdicts import AdrVerdicts, Kind, Outcome, Verdict
from adrbench.errors import UserError
from adrbench.project import declared_facts
from adrbench.reports.markers import EVIDENCE, INDEX, find_block, replace_block
from adrbench.reports.serving import is_serving, render_serving_chart, render_serving_section
from adrbench.results.metrics import METRICS, flatten_metrics
from adrbench.results.record import (
    MEMORY_SOURCE_LABELS,
    Environment,
    Metrics,
    RunRecord,
    ScenarioResult,
    Status,
)
from adrbench.results.store import run_path
from adrbench.stats import Estimate, estimate
from adrbench.units import format_bytes, format_count

if TYPE_CHECKING:  # charts import matplotlib; only `adrbench report` draws them
    from adrbench.reports.charts import ChartKind

__all__ = [
    "AppendixInput",
    "Chart",
    "EvidenceRun",
    "IndexEntry",
    "JudgedAdr",
    "combine_verdicts",
    "environment_label",
    "evidence_scenarios",
    "evidence_suites",
    "format_value",
    "judge_for_report",
    "newly_unconfirmed",
    "plan_reports",
    "render_appendix",
    "render_evidence_block",
    "render_index",
    "report_all",
    "uncertainty_notes",
    "verdict_line",
]


@dataclass(frozen=True, slots=True)
class EvidenceRun:
    """One environment's latest run, shown as one column.

    Args:
        run: The run.
        results_file: Its results file as linked from the appendix (a relative path).
        verdicts: The ADR judged on this run's facts.
        staleness: Whether the run still speaks for today's suite and measuring code (None: not
            judged).
    """

    run: RunRecord
    results_file: str
    verdicts: AdrVerdicts
    staleness: Staleness | None = None


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart image shown in the appendix.

    Args:
        caption: Alt text and caption.
        file: The image as linked from the appendix (a relative path).
    """

    caption: str
    file: str


@dataclass(frozen=True, slots=True)
class AppendixInput:
    """Everything one appendix shows.

    Args:
        verdicts: The ADR's verdicts over all environments (see :func:`combine_verdicts`): the
            headline, and the verdict tables when there are no runs.
        adr_link: The ADR file as linked from the appendix.
        runs: The latest run of each environment, one column each, in column order.
        scenarios: The training scenario names shown, in order (see :func:`evidence_scenarios`).
        charts: Chart images, in order.
        memory_model: The memory-model section (ADRs that read ``estimate.*``), Markdown.
        serving: The serving scenarios' section (:mod:`adrbench.reports.serving`), Markdown.
    """

    verdicts: AdrVerdicts
    adr_link: str
    runs: tuple[EvidenceRun, ...]
    scenarios: tuple[str, ...]
    charts: tuple[Chart, ...]
    memory_model: str = ""
    serving: str = ""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One row of ``adr/README.md``.

    Args:
        verdicts: The ADR's verdicts.
        adr_link: The ADR file as linked from the index.
        appendix_link: Its appendix as linked from the index.
    """

    verdicts: AdrVerdicts
    adr_link: str
    appendix_link: str


# --- the one-line verdict ----------------------------------------------------------------------


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


def verdict_line(adr: AdrVerdicts) -> str:
    """The one-line summary, e.g. ``"Holds — 0 triggers fired, 0 claims failed, 0 premises stale,
    0 inconclusive, 0 unknown"``.

    The headline is ``Revisit`` when anything needs attention (a trigger fired, a claim failed, a
    premise went stale), ``Unconfirmed`` when nothing does but some verdicts are inconclusive or
    unknown (neither is ever shown as fine), ``Holds`` when every verdict was decided and none
    needs attention.

    Args:
        adr: The ADR's verdicts.
    """
    outcomes = [v.outcome for v in adr.verdicts]
    fired = sum(1 for v in adr.verdicts if v.kind is Kind.TRIGGER and v.outcome is Outcome.FIRED)
    failed = sum(1 for v in adr.verdicts if v.kind is Kind.CLAIM and v.outcome is Outcome.FAILS)
    stale = sum(1 for v in adr.verdicts if v.kind is Kind.PREMISE and v.outcome is Outcome.STALE)
    unknown = outcomes.count(Outcome.UNKNOWN)
    inconclusive = outcomes.count(Outcome.INCONCLUSIVE)
    if adr.needs_attention:
        headline = "Revisit"
    elif unknown or inconclusive:
        headline = "Unconfirmed"
    elif not outcomes:
        headline = "Not checked (no claims, triggers or premises)"
    else:
        headline = "Holds"
    counts = ", ".join(
        [
            f"{_plural(fired, 'trigger')} fired",
            f"{_plural(failed, 'claim')} failed",
            f"{_plural(stale, 'premise')} stale",
            f"{inconclusive} inconclusive",
            f"{unknown} unknown",
        ]
    )
    return f"{headline} — {counts}"


# --- formatting --------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    """Inline code that survives any backticks inside it (CommonMark: a longer fence)."""
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def format_value(name: str, value: object) -> str:
    """A fact's value for humans, using its unit where the name says it.

    ``*_bytes`` facts are binary sizes (``1.70 GiB``), counts get a suffix (``22.7M``), ratios
    three decimals, seconds and rates a fixed number of decimals.

    Args:
        name: The fact's dotted name, e.g. ``"model.parameters"`` or
            ``"results.lora.peak_rss_bytes"``.
        value: Its value.
    """
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Estimate):
        return format_estimate(name, value)
    if isinstance(value, int | float):
        last = name.rsplit(".", 1)[-1]
        spec = METRICS.get(last)
        unit = spec.unit if spec else None
        if last.endswith("_bytes") or unit == "bytes":
            return format_bytes(value)
        if unit == "ratio":
            return f"{value:.3f}"
        if unit == "s":
            return f"{value:.2f} s"
        if unit in ("samples/s", "tokens/s", "FLOP/s"):
            return f"{format_count(value) if abs(value) >= 1e4 else f'{value:.1f}'} {unit}"
        if isinstance(value, int) or abs(value) >= 1000 or unit == "count":
            return format_count(value)
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return "[" + ", ".join(format_value(name, v) for v in value) + "]"
    return str(value)


def format_estimate(name: str, value: Estimate) -> str:
    """``mean ± 95% CI half-width (n=N)``; an estimate of zero width shows its value and n."""
    if value.exact:
        return f"{format_value(name, value.mean)} (n={value.n})"
    return (
        f"{format_value(name, value.mean)} ± {format_value(name, value.half_width)} (n={value.n})"
    )


def _unit_name(text: str) -> str:
    """The last fact name in an expression's text, whose unit formats the whole quantity."""
    names = [n for n in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", text) if "." in n]
    return names[-1] if names else text


def format_interval(name: str, value: Estimate) -> str:
    """``mean [low, high] (n=N, method)``: the 95% interval that decided a verdict."""
    name = _unit_name(name)
    low, high = format_value(name, value.low), format_value(name, value.high)
    mean = format_value(name, value.mean)
    return f"{mean} [{low}, {high}] (n={value.n}, {value.method})"


def resolve_note(verdict: Verdict) -> str:
    """For an inconclusive verdict: about how many repetitions would resolve it."""
    name = _unit_name(list(verdict.intervals)[-1]) if verdict.intervals else ""
    gap = format_value(name, verdict.gap) if verdict.gap is not None else "the"
    if verdict.resolve is None:
        return f"no number of repetitions would resolve a gap of {gap}"
    return f"about {verdict.resolve} repetitions would resolve a gap of {gap}"


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def environment_label(env: Environment) -> str:
    """The column header for one environment: its device and its fingerprint."""
    return f"{env.device_name} · {env.fingerprint}"


# --- evidence tables ---------------------------------------------------------------------------

# (row label, Memory field): each counter named for where it comes from.
_MEMORY_ROWS: tuple[tuple[str, str], ...] = (
    ("Peak memory: process peak RSS", "peak_rss_bytes"),
    ("Peak memory: train peak RSS", "train_peak_rss_bytes"),
    ("Peak memory: CUDA max allocated", "cuda_max_allocated_bytes"),
    ("Peak memory: CUDA max reserved", "cuda_max_reserved_bytes"),
    ("Peak memory: MPS sampled max", "mps_sampled_max_allocated_bytes"),
)
_NOT_MEASURED = "—"


def _status_cell(result: ScenarioResult | None) -> str:
    if result is None:
        return "not in this run"
    if result.status is Status.SKIPPED and result.skip is not None:
        return f"skipped: {_code(result.skip.reason)} — {result.skip.message}"
    if result.status is Status.FAILED and result.failure is not None:
        failure = result.failure
        return f"**failed** ({failure.kind.value}): {failure.type}: {failure.message}"
    return "ok"


def _repetition_values(result: ScenarioResult, metric: str) -> list[tuple[int, float]]:
    """``(seed, value)`` of ``metric`` in every ok repetition that measured it."""
    values = []
    for rep in result.samples():
        if rep.status is Status.OK and rep.metrics is not None:
            flat = flatten_metrics(rep.metrics)
            if metric in flat:
                values.append((rep.scenario.seed, flat[metric]))
    return values


def _measured_cell(result: ScenarioResult, metric: str, fmt: Callable[[float], str]) -> str | None:
    """``mean ± 95% CI half-width (n=N)`` across repetitions (Student t); ``value (n=1)`` for
    one repetition, whose spread this run cannot show."""
    values = _repetition_values(result, metric)
    if not values:
        return None
    if len(values) == 1:
        return f"{fmt(values[0][1])} (n=1)"
    e = estimate(values)
    return f"{fmt(e.mean)} ± {fmt(e.half_width)} (n={e.n})"


def _repetitions_cell(result: ScenarioResult) -> str:
    seeds = [str(rep.scenario.seed) for rep in result.samples()]
    return f"{len(seeds)} (seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)})"


def _spearman_cell(result: ScenarioResult, split: str) -> str | None:
    after = _measured_cell(result, f"{split}_spearman", lambda v: f"{v:.3f}")
    if after is None:
        return None
    metrics = result.metrics
    before = (metrics.before or {}).get(split) if metrics is not None else None
    if before is None:  # evaluate_before was off: no zero-shot score
        return f"{_NOT_MEASURED} → {after}"
    return f"{before.spearman:.3f} → {after}"


def _splits(results: Iterable[ScenarioResult | None]) -> list[str]:
    seen: set[str] = set()
    for result in results:
        if result is not None and result.metrics is not None:
            seen.update(result.metrics.after)
    first = [s for s in ("dev", "test") if s in seen]
    return first + sorted(seen - set(first))


def _method_cell(result: ScenarioResult) -> str:
    scenario = result.scenario
    # The speed levers are named only where set, so a default scenario reads as before.
    threads = f"{scenario.threads} thread{'' if scenario.threads == 1 else 's'}"
    levers = [
        text
        for text, on in (
            (scenario.batching, scenario.batching != "shuffled"),
            ("pre-tokenised", scenario.pretokenize),
            (f"{scenario.optimizer_impl} AdamW", scenario.optimizer_impl != "default"),
            ("torch.compile", scenario.compile),
            (threads, scenario.threads is not None),
        )
        if on
    ]
    settings = ", ".join([scenario.dtype, *levers])
    if scenario.method == "full":
        return f"full, {settings}"
    return f"{scenario.method} (r={scenario.lora.r}, alpha={scenario.lora.alpha}), {settings}"


def _params_cell(m: Metrics) -> str:
    share = m.trainable_parameters / m.total_parameters if m.total_parameters else 0.0
    return (
        f"{format_count(m.trainable_parameters)} / {format_count(m.total_parameters)} ({share:.2%})"
    )


def _wall_cell(m: Metrics) -> str:
    p = m.phases
    total = p.load_s + p.train_s + p.evaluate_s
    return (
        f"{_seconds(total)} (load {_seconds(p.load_s)}, train {_seconds(p.train_s)}, "
        f"evaluate {_seconds(p.evaluate_s)})"
    )


def _find(run: RunRecord, name: str) -> ScenarioResult | None:
    return next((r for r in run.scenarios if r.name == name), None)


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    # Cells are preformatted strings: number parsing would reformat "0.850" or "1.2e3".
    return str(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


def _scenario_table(name: str, runs: Sequence[EvidenceRun]) -> str:
    """One scenario, one column per environment."""
    results = [_find(r.run, name) for r in runs]
    metrics = [r.metrics if r is not None else None for r in results]
    rows: list[list[str]] = [
        ["Status", *(_cell(_status_cell(r)) for r in results)],
        ["Method", *(_cell(_method_cell(r)) if r else _NOT_MEASURED for r in results)],
    ]
    if len({r.fingerprint for r in results if r is not None}) > 1:
        # Same name, different settings (e.g. quick on one machine, full on another): say so
        # rather than let the columns pass for a like-for-like comparison.
        rows.append(
            [
                "Config fingerprint (differs: not comparable)",
                *(_code(r.fingerprint[:12]) if r else _NOT_MEASURED for r in results),
            ]
        )

    def add(label: str, cell: Callable[[Metrics], str | None]) -> None:
        cells = [cell(m) if m is not None else None for m in metrics]
        if any(c is not None for c in cells):  # a row nobody measured says nothing
            rows.append([label, *(_cell(c) if c is not None else _NOT_MEASURED for c in cells)])

    def measured(label: str, cell: Callable[[ScenarioResult], str | None]) -> None:
        cells = [cell(r) if r is not None and r.metrics is not None else None for r in results]
        if any(c is not None for c in cells):
            rows.append([label, *(_cell(c) if c is not None else _NOT_MEASURED for c in cells)])

    measured("Repetitions", _repetitions_cell)
    add("Trainable / total parameters", _params_cell)
    measured(
        "Samples/s (mean ± 95% CI, n repetitions)",
        functools.partial(_measured_cell, metric="samples_per_s", fmt=lambda v: f"{v:.1f}"),
    )
    measured(
        "Real tokens/s",
        functools.partial(_measured_cell, metric="real_tokens_per_s", fmt=lambda v: f"{v:.0f}"),
    )
    add(
        "Training FLOP/s on padded tokens (of peak, first repetition)",
        functools.partial(_flops_cell, real=False),
    )
    add(
        "Training FLOP/s on real tokens (of peak, first repetition)",
        functools.partial(_flops_cell, real=True),
    )
    add(
        "Matmul peak FLOP/s (scenario dtype, in-process)",
        lambda m: _gflops(m.compute.matmul_peak_flops_per_s),
    )
    measured("Peak memory (device's principal counter)", _principal_memory_cell)
    for label, field in _MEMORY_ROWS:
        measured(label, functools.partial(_measured_cell, metric=field, fmt=format_bytes))
    for split in _splits(results):
        measured(
            f"STS-B {split} Spearman before → after",
            functools.partial(_spearman_cell, split=split),
        )
    add("Wall time (first repetition)", _wall_cell)
    headers = ["", *(_cell(environment_label(r.run.environment)) for r in runs)]
    return _table(rows, headers)


def _principal_memory_cell(result: ScenarioResult) -> str | None:
    """Mean ± 95% CI of the principal counter across repetitions, and which counter it is."""
    cell = _measured_cell(result, "peak_memory_bytes", format_bytes)
    if cell is None or result.metrics is None:
        return None
    source = result.metrics.memory.peak_memory_source
    return f"{cell} ({MEMORY_SOURCE_LABELS.get(source, source)})"


def _flops_cell(m: Metrics, *, real: bool) -> str:
    flat = flatten_metrics(m)
    if real:
        flops, fraction = flat["real_token_flops_per_s"], flat["real_token_fraction_of_peak"]
        return f"{_gflops(flops)} ({fraction:.1%}; padding {flat['padding_fraction']:.0%})"
    return f"{_gflops(m.compute.train_flops_per_s)} ({m.compute.fraction_of_peak:.1%})"


def _gflops(value: float) -> str:
    return f"{value / 1e9:.1f} GFLOP/s"


def _environment_table(runs: Sequence[EvidenceRun]) -> str:
    envs = [r.run.environment for r in runs]
    packages = sorted({name for env in envs for name in env.packages})
    rows: list[list[str]] = [
        ["Device", *(f"{e.device_kind}: {e.device_name}" for e in envs)],
        ["CPU", *(f"{e.cpu_model} ({e.cores} cores)" for e in envs)],
        ["Memory", *(format_bytes(e.memory_bytes) for e in envs)],
        ["Torch threads", *(str(e.torch_threads) for e in envs)],
        ["OS", *(e.os for e in envs)],
        ["Python", *(e.python for e in envs)],
        *([name, *((e.packages.get(name) or "not installed") for e in envs)] for name in packages),
    ]
    headers = ["", *(environment_label(e) for e in envs)]
    return _table([[_cell(c) for c in row] for row in rows], [_cell(h) for h in headers])


def _provenance_table(runs: Sequence[EvidenceRun]) -> str:
    def commit(run: RunRecord) -> str:
        git = run.git
        if git.commit is None:
            return "unknown (not a git checkout)"
        dirty = {True: ", dirty worktree", False: "", None: ", worktree state unknown"}
        branch = git.branch or "detached HEAD"
        return f"{_code(git.commit[:12])} on {branch}{dirty[git.worktree_is_dirty]}"

    def model(run: RunRecord) -> str:
        if run.model is None:
            return "none"
        sha = f", sha256 {run.model.weights_sha256[:12]}" if run.model.weights_sha256 else ""
        return f"{run.model.id} ({run.model.source}{sha})"

    def dataset(run: RunRecord) -> str:
        if run.dataset is None:
            return "none"
        return f"{run.dataset.name} ({run.dataset.source})"

    rows: list[list[str]] = [
        ["Run id", *(_code(r.run.run_id) for r in runs)],
        ["Suite / profile", *(f"{r.run.suite} / {r.run.profile}" for r in runs)],
        ["Started (UTC)", *(r.run.started_at for r in runs)],
        ["Finished (UTC)", *(r.run.finished_at for r in runs)],
        ["Commit", *(commit(r.run) for r in runs)],
        ["Model", *(model(r.run) for r in runs)],
        ["Dataset", *(dataset(r.run) for r in runs)],
        ["Results file", *(f"[{Path(r.results_file).name}]({r.results_file})" for r in runs)],
    ]
    if any(r.staleness is not None for r in runs):
        rows.append(
            ["Evidence", *(r.staleness.summary() if r.staleness else "not judged" for r in runs)]
        )
    headers = ["", *(environment_label(r.run.environment) for r in runs)]
    return _table([[_cell(c) for c in row] for row in rows], [_cell(h) for h in headers])


# --- verdict tables ----------------------------------------------------------------------------

_OUTCOME_CELL: Mapping[Outcome, str] = {
    Outcome.FIRED: "**fired**",
    Outcome.NOT_FIRED: "not fired",
    Outcome.HOLDS: "holds",
    Outcome.FAILS: "**fails**",
    Outcome.STALE: "**stale**",
    Outcome.UNKNOWN: "**unknown**",
    Outcome.INCONCLUSIVE: "**inconclusive**",
}


def uncertainty_notes(verdict: Verdict) -> list[str]:
    """The intervals that decided ``verdict`` (beyond its plain values) and, when it is
    inconclusive, how many repetitions would resolve it: shown by reports and ``check`` alike."""
    notes = [
        f"{text} = {format_interval(text, e)}"
        for text, e in verdict.intervals.items()
        if text not in verdict.values
    ]
    if verdict.outcome is Outcome.INCONCLUSIVE:
        notes.append(resolve_note(verdict))
    return notes


def _values_cell(verdict: Verdict) -> str:
    shown = [
        f"{name} = {format_value(name, verdict.values[name])}" for name in sorted(verdict.values)
    ]
    return ", ".join(shown + uncertainty_notes(verdict))


def _verdict_cell(verdict: Verdict) -> str:
    """The outcome, then the values that decided it (or, for unknown, why)."""
    cell = _OUTCOME_CELL[verdict.outcome]
    details = [d for d in (_values_cell(verdict), verdict.reason) if d]
    return f"{cell}: {'; '.join(details)}" if details else cell


def _verdict_table(kind: Kind, columns: Sequence[tuple[str, AdrVerdicts]]) -> str:
    """One row per item of ``kind``, one verdict column per environment."""
    first = columns[0][1].of_kind(kind)
    rows = []
    for index, item in enumerate(first):
        cells = [_code(item.id), item.text, _code(item.expression)]
        cells += [_verdict_cell(adr.of_kind(kind)[index]) for _, adr in columns]
        rows.append([_cell(c) for c in cells])
    headers = ["Id", "Statement", "Condition", *(_cell(label) for label, _ in columns)]
    return _table(rows, headers)


def combine_verdicts(per_run: Sequence[AdrVerdicts]) -> AdrVerdicts:
    """One ADR's verdicts over several environments, item by item, the most pressing first.

    An item needs attention if it does on any machine (a CUDA trigger fires as soon as one
    machine has CUDA); otherwise it is unknown if it is unknown on any; otherwise it is what every
    machine agrees on. The first environment (in column order) with that outcome gives the
    values and reason.

    Args:
        per_run: The ADR judged on each environment's run; at least one, all of the same ADR.
    """
    if not per_run:
        raise ValueError("combine_verdicts needs the verdicts of at least one run")
    combined: list[Verdict] = []
    for index, verdict in enumerate(per_run[0].verdicts):
        candidates = [adr.verdicts[index] for adr in per_run]
        pressing = [v for v in candidates if v.outcome.needs_attention]
        unknown = [v for v in candidates if v.outcome is Outcome.UNKNOWN]
        unsure = [v for v in candidates if v.outcome is Outcome.INCONCLUSIVE]
        combined.append((pressing or unknown or unsure or [verdict])[0])
    first = per_run[0]
    return AdrVerdicts(
        number=first.number,
        title=first.title,
        path=first.path,
        status=first.status,
        evidence=first.evidence,
        verdicts=tuple(combined),
    )


# --- which scenarios ---------------------------------------------------------------------------


def evidence_scenarios(evidence: Sequence[str], runs: Sequence[RunRecord]) -> tuple[str, ...]:
    """The scenarios an ADR shows, in the ADR's order.

    An entry ``suite/scenario`` names one scenario, which is shown even when no run has it (its
    columns say "not in this run"), so a missing benchmark is visible rather than dropped. An
    entry ``suite`` stands for every scenario the runs of that suite have, in run order.

    Args:
        evidence: The ADR's evidence entries.
        runs: The runs shown.
    """
    names: list[str] = []
    for entry in evidence:
        suite, _, scenario = entry.partition("/")
        if scenario:
            candidates = [scenario]
        else:
            candidates = [r.name for run in runs if run.suite == suite for r in run.scenarios]
        names.extend(name for name in candidates if name not in names)
    return tuple(names)


# --- templates ---------------------------------------------------------------------------------

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("adrbench.reports", "templates"),
    undefined=jinja2.StrictUndefined,  # a missing value fails the render, never prints ""
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,  # Markdown, not HTML; cells are escaped by _cell
)


def _render(template: str, **context: object) -> str:
    return _ENV.get_template(template).render(**context)


@dataclass(frozen=True, slots=True)
class _ScenarioSection:
    name: str
    table: str


def render_appendix(appendix: AppendixInput) -> str:
    """The appendix Markdown for one ADR.

    Args:
        appendix: What to show.
    """
    adr = appendix.verdicts
    runs = appendix.runs
    # Columns: the runs that hold the training scenarios shown (an ADR's serving run has its own
    # section); the environments, one column each however many of the ADR's suites ran there.
    shown = set(appendix.scenarios)
    training = [r for r in runs if any(s.name in shown for s in r.run.scenarios)]
    sections = [
        _ScenarioSection(name, _scenario_table(name, training)) for name in appendix.scenarios
    ]
    # One verdict column per environment: an environment's runs are judged together.
    columns = [
        (environment_label(r.run.environment), r.verdicts) for r in _one_per_environment(runs)
    ] or [("Verdict (no results yet)", adr)]
    return _render(
        "appendix.md.j2",
        adr=adr,
        adr_link=appendix.adr_link,
        adr_file=Path(adr.path).name,
        headline=verdict_line(adr),
        runs=runs,
        environments=_environment_table(_one_per_environment(runs)) if runs else "",
        scenarios=sections,
        charts=appendix.charts,
        claims=_verdict_table(Kind.CLAIM, columns) if adr.of_kind(Kind.CLAIM) else "",
        triggers=_verdict_table(Kind.TRIGGER, columns) if adr.of_kind(Kind.TRIGGER) else "",
        premises=_verdict_table(Kind.PREMISE, columns) if adr.of_kind(Kind.PREMISE) else "",
        provenance=_provenance_table(runs) if runs else "",
        memory_model=appendix.memory_model,
        serving=appendix.serving,
    )


def _one_per_environment(runs: Sequence[EvidenceRun]) -> list[EvidenceRun]:
    """The first of ``runs`` of each environment, in order."""
    seen: set[str] = set()
    first = []
    for run in runs:
        if run.run.environment.fingerprint not in seen:
            seen.add(run.run.environment.fingerprint)
            first.append(run)
    return first


def render_evidence_block(adr: AdrVerdicts, appendix_link: str) -> str:
    """The lines between the evidence markers in the ADR itself.

    Args:
        adr: The ADR's verdicts.
        appendix_link: Its appendix as linked from the ADR.
    """
    return _render("evidence_block.md.j2", headline=verdict_line(adr), appendix_link=appendix_link)


def render_index(entries: Sequence[IndexEntry]) -> str:
    """The lines between the index markers in ``adr/README.md``.

    Args:
        entries: One per ADR, in number order.
    """
    rows = [
        [
            f"{e.verdicts.number:04d}",
            f"[{_cell(e.verdicts.title)}]({e.adr_link})",
            _cell(e.verdicts.status),
            _cell(verdict_line(e.verdicts)),
            f"[evidence]({e.appendix_link})",
        ]
        for e in entries
    ]
    table = _table(rows, ["No.", "Title", "Status", "Verdict", "Appendix"]) if rows else ""
    return _render("index_block.md.j2", table=table)


# --- the files ---------------------------------------------------------------------------------

_CHARTS: tuple[tuple[ChartKind, str], ...] = (
    ("throughput", "Training throughput per method"),
    ("memory", "Peak memory per method"),
    ("pareto", "Peak memory against STS-B test Spearman"),
)
_INDEX_HEADER = (
    "# Architecture decision records\n\n"
    "The index between the markers is regenerated by `adrbench report`; write around it.\n"
)


def _link(target: Path, start: Path) -> str:
    """``target`` relative to the directory ``start``, with forward slashes (Markdown links)."""
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def _read_text(path: Path) -> str:
    try:
        # Bytes, then UTF-8: text mode would turn "\r\n" into "\n" and change the author's file.
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path}: not UTF-8 (byte {error.start}); save it as UTF-8 and rerun `adrbench report`"
        ) from None


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically, so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


@dataclass(frozen=True, slots=True)
class JudgedAdr:
    """One ADR as the report shows it.

    Args:
        verdicts: Over all environments (:func:`combine_verdicts`), or, with no runs, judged
            without results.
        runs: Each environment's latest run of the ADR's evidence suites, with the ADR judged on
            it, in column order.
    """

    verdicts: AdrVerdicts
    runs: tuple[tuple[RunRecord, AdrVerdicts], ...]


def plan_reports(
    judged: Sequence[JudgedAdr], adr_dir: Path, results_dir: Path
) -> dict[Path, bytes]:
    """Every file ``adrbench report`` owns or edits, with the bytes it should hold.

    Args:
        judged: Every ADR with its runs and verdicts.
        adr_dir: The ADR directory; appendices go to ``<adr_dir>/appendix``.
        results_dir: The results directory the runs were read from (for the links).
    """
    from adrbench.decisions.staleness import judge_staleness
    from adrbench.engine.environment import repository_root

    appendix_dir = adr_dir / "appendix"
    outputs: dict[Path, bytes] = {}
    entries: list[IndexEntry] = []
    root = repository_root(adr_dir.resolve().parent)
    # Not this machine's installed stack: the same results must render the same bytes anywhere.
    staleness = {
        run.run_id: judge_staleness(run, root=root, this_environment=None)
        for item in judged
        for run, _ in item.runs
    }
    for item in sorted(judged, key=lambda j: (j.verdicts.number, j.verdicts.path)):
        adr = item.verdicts
        adr_path = adr_dir / Path(adr.path).name
        stem = adr_path.stem
        runs = [run for run, _ in item.runs]
        shown = evidence_scenarios(adr.evidence, runs)
        served = {r.name for run in runs for r in run.scenarios if is_serving(r)}
        scenarios = tuple(name for name in shown if name not in served)
        serving_names = [name for name in shown if name in served]
        charts: list[Chart] = []
        # A run of another of the ADR's suites (a serving run beside a training run) has none of
        # these scenarios: it would only add an empty column per environment.
        training = [run for run in runs if any(r.name in scenarios for r in run.scenarios)]
        if scenarios and training:  # no evidence, no charts (an empty chart says nothing)
            for kind, caption in _CHARTS:
                chart_path = appendix_dir / f"{stem}-{kind}.svg"
                from adrbench.reports.charts import render_chart

                outputs[chart_path] = render_chart(kind, training, scenarios)
                charts.append(Chart(caption, chart_path.name))
        serving = ""
        if serving_names:
            labelled = [(environment_label(run.environment), run) for run in runs]
            serving = render_serving_section(labelled, serving_names)
            chart_path = appendix_dir / f"{stem}-serving.svg"
            outputs[chart_path] = render_serving_chart(labelled, serving_names)
            charts.append(
                Chart("Serving: resident memory and swap latency against N", chart_path.name)
            )
        memory_model = ""
        if uses_estimates(adr):
            from adrbench.reports.memory_model import (
                memory_points,
                memory_runs,
                render_break_even_chart,
                render_memory_section,
                rss_before_training,
            )

            scaling = memory_runs(results_dir)
            points = memory_points(results_dir)
            memory_model = render_memory_section(points, rss_before_training(scaling))
            chart_path = appendix_dir / f"{stem}-breakeven.svg"
            outputs[chart_path] = render_break_even_chart(points)
            charts.append(Chart("Peak training memory against parameters", chart_path.name))
        appendix_path = appendix_dir / f"{stem}.md"
        evidence_runs = tuple(
            EvidenceRun(
                run,
                _link(run_path(results_dir, run.run_id), appendix_dir),
                verdicts,
                staleness[run.run_id],
            )
            for run, verdicts in item.runs
        )
        outputs[appendix_path] = render_appendix(
            AppendixInput(
                verdicts=adr,
                adr_link=_link(adr_path, appendix_dir),
                runs=evidence_runs,
                scenarios=scenarios,
                charts=tuple(charts),
                memory_model=memory_model,
                serving=serving,
            )
        ).encode("utf-8")
        block = render_evidence_block(adr, _link(appendix_path, adr_dir))
        text = _read_text(adr_path)
        outputs[adr_path] = replace_block(text, block, EVIDENCE, path=str(adr_path)).encode("utf-8")
        entries.append(IndexEntry(adr, adr_path.name, _link(appendix_path, adr_dir)))
    index_path = adr_dir / "README.md"
    index_text = _read_text(index_path) if index_path.exists() else _INDEX_HEADER
    index = replace_block(index_text, render_index(entries), INDEX, path=str(index_path))
    outputs[index_path] = index.encode("utf-8")
    return outputs


def uses_estimates(adr: AdrVerdicts) -> bool:
    """Whether any claim, trigger or premise of ``adr`` reads an ``estimate.*`` fact."""
    return any("estimate." in v.expression for v in adr.verdicts)


def judge_for_report(
    adr_dir: Path, results_dir: Path, *, probes: bool = True, include_interrupted: bool = False
) -> list[JudgedAdr]:
    """Judge every ADR on the latest run of each environment of its evidence suites.

    Not ``verdicts.judge_all``: that picks the run of the machine it runs on, so a report made on
    CI would differ from one made on the benchmark box. Here each environment's column is judged
    on its own run, whatever machine renders it; an ADR naming several suites is judged on the
    union of its suites' runs on each environment (as ``check`` judges it, both selecting runs
    through :mod:`adrbench.decisions.evidence`). Only the premise probes run here (once), since
    they are not recorded in results.

    Args:
        adr_dir: The ADR directory.
        results_dir: The results directory.
        probes: Run the premise probes; False leaves ``probes.*`` facts unknown.
        include_interrupted: Let runs a signal stopped part-way be evidence.

    Raises:
        AdrError: lint problems or expressions that cannot be judged, all of them.
        ResultsError: a corrupt results file.
        UserError: two runs of an ADR's suites share a scenario name.
    """
    from adrbench.decisions.adr import AdrError, Problem, load_adrs
    from adrbench.decisions.facts import Facts, build_facts
    from adrbench.decisions.verdicts import judge_adr

    adrs = load_adrs(adr_dir)
    suites = {s for adr in adrs for s in evidence_suites(adr.evidence)}
    runs = evidence_runs(results_dir, suites, include_interrupted=include_interrupted)
    # Probes run once, in the same call as the first run's facts (without a run: the live env).
    declared = declared_facts(adr_dir)
    first = build_facts(runs[0] if runs else None, probes=probes, declared=declared)
    probe_values = {k: v for k, v in first.values.items() if k.startswith("probes.")}
    facts: dict[tuple[str, ...], Facts] = {(runs[0].run_id,) if runs else (): first}

    def facts_for(together: Sequence[RunRecord]) -> Facts:
        """The facts of an ADR's runs on one environment: their union (as ``check`` judges)."""
        key = tuple(r.run_id for r in together)
        if key not in facts:
            base = build_facts(
                together[0] if together else None,
                also=together[1:],
                probes=False,
                declared=declared,
            )
            facts[key] = Facts(
                values={**base.values, **probe_values},
                run_id=base.run_id,
                probe_details=first.probe_details,
            )
        return facts[key]

    judged: list[JudgedAdr] = []
    problems: list[Problem] = []
    for adr in adrs:
        chosen = adr_runs(adr.evidence, runs)
        try:
            by_environment = {
                fingerprint: judge_adr(
                    adr, facts_for(adr_runs(adr.evidence, chosen, environment=fingerprint))
                )
                for fingerprint in dict.fromkeys(r.environment.fingerprint for r in chosen)
            }
            per_run = tuple((run, by_environment[run.environment.fingerprint]) for run in chosen)
            if per_run:
                verdicts = combine_verdicts(list(by_environment.values()))
            else:
                verdicts = judge_adr(adr, facts_for(()))
        except AdrError as error:
            problems.extend(error.problems)
            continue
        except UserError as error:
            raise UserError(f"ADR-{adr.number:04d} ({adr.path}): {error}") from None
        judged.append(JudgedAdr(verdicts, per_run))
    if problems:
        raise AdrError(problems)
    return judged


_UNKNOWN_COUNT = re.compile(r"\b([0-9]+) unknown\b")


def _committed_unknown(adr_path: Path) -> int | None:
    """How many unknown verdicts the ADR's evidence block shows now (None: no block yet)."""
    text = _read_text(adr_path)
    span = find_block(text, EVIDENCE, path=str(adr_path))
    if span is None:
        return None
    block = "".join(text.splitlines(keepends=True)[span[0] : span[1] + 1])
    found = _UNKNOWN_COUNT.search(block)
    return int(found.group(1)) if found else None


def newly_unconfirmed(judged: Sequence[JudgedAdr], adr_dir: Path) -> list[str]:
    """ADRs whose regenerated block would show more unknown verdicts than the committed one, as
    ``"ADR-0001 (0 -> 3 unknown)"``: their evidence is missing from the results read."""
    worse = []
    for item in judged:
        adr = item.verdicts
        before = _committed_unknown(adr_dir / Path(adr.path).name)
        after = sum(1 for v in adr.verdicts if v.outcome is Outcome.UNKNOWN)
        if before is not None and after > before:
            worse.append(f"ADR-{adr.number:04d} ({before} -> {after} unknown)")
    return worse


def report_all(
    adr_dir: Path,
    results_dir: Path,
    *,
    check: bool = False,
    probes: bool = True,
    allow_unconfirmed: bool = False,
    include_interrupted: bool = False,
) -> list[Path]:
    """Regenerate every appendix, chart, evidence block and the index; return what changed.

    Args:
        adr_dir: The ADR directory (``adr``).
        results_dir: The results directory (``results``).
        check: Write nothing; only report which files regenerating would change.
        probes: Run the premise probes (see :func:`judge_for_report`).
        allow_unconfirmed: Write even when an ADR would get more unknown verdicts than its
            committed evidence block shows (see :func:`newly_unconfirmed`).
        include_interrupted: Let runs a signal stopped part-way be evidence (never by default).

    Returns:
        The paths whose bytes differ from what regenerating gives (written unless ``check``),
        then files in ``<adr_dir>/appendix`` that it no longer gives (deleted unless ``check``),
        in a stable order.

    Raises:
        UserError: a bad ADR, a corrupt results file, broken markers, or (unless
            ``allow_unconfirmed``) confirmed verdicts that would turn unknown; nothing is written.
    """
    if not adr_dir.is_dir():
        raise UserError(f"{adr_dir}: no such ADR directory; pass --adr-dir or create it")
    judged = judge_for_report(
        adr_dir, results_dir, probes=probes, include_interrupted=include_interrupted
    )
    if not check and not allow_unconfirmed:
        worse = newly_unconfirmed(judged, adr_dir)
        if worse:
            raise UserError(
                f"{results_dir}: regenerating would replace confirmed verdicts with unknown ones "
                f"in {', '.join(worse)}; nothing written. Point --results-dir at the runs that "
                "confirmed them, or pass --allow-unconfirmed to write anyway"
            )
    outputs = plan_reports(judged, adr_dir, results_dir)
    changed = [p for p, data in outputs.items() if not p.is_file() or p.read_bytes() != data]
    # adr/appendix/ is ours: a file there that regenerating does not produce (its ADR was
    # renamed or lost its evidence) is stale too, and goes.
    appendix_dir = adr_dir / "appendix"
    orphans = sorted(
        p
        for p in (appendix_dir.glob("*") if appendix_dir.is_dir() else ())
        if p.is_file() and p.suffix in (".md", ".svg") and p not in outputs
    )
    if not check:
        for path in changed:
            _write(path, outputs[path])
        for path in orphans:
            path.unlink()
    return changed + orphans
