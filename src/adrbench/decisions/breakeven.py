"""Where each method stops fitting a memory budget, and the seed's 7B arithmetic checked.

Two regimes, both at the memory-scaling suite's batch and sequence length (8 sequences of 32
tokens) with AdamW and LoRA r=8 on the attention projections:

``fp32``
    As this engine trains (and as ``bench/memory_scaling.toml`` measured): fp32 weights and
    activations; QLoRA's non-quantized weights fp32 too.
``16-bit``
    What the seed's arithmetic assumes for a 7B model: bf16 weights and autocast activations,
    fp32 adapters; full fine-tuning in mixed precision (the ZeRO paper's 2 + 2 + 12 bytes a
    parameter). Not measured here: the bytes a parameter follow from the dtypes.

Model shapes are LLaMA-proportioned (:func:`~adrbench.decisions.estimate.llama_shape`), the
fixed overhead is the CPU one calibrated by the suite (a laptop's unified memory is used by a
process much like a CPU's).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tabulate import tabulate

from adrbench.decisions.estimate import (
    LLAMA_7B,
    Estimate,
    Settings,
    estimate,
    largest_fitting,
)
from adrbench.units import format_bytes, format_count

__all__ = [
    "BUDGETS",
    "REGIMES",
    "BreakEven",
    "break_even_rows",
    "format_break_even",
    "format_seed_rows",
    "regime_settings",
    "seed_rows",
]

BUDGETS: tuple[tuple[str, float], ...] = (
    ("8 GB (the seed's M2)", 8e9),
    ("16 GB", 16e9),
    ("24 GB", 24e9),
    ("80 GB", 80e9),
)
REGIMES = ("fp32", "16-bit")
SUITE_BATCH, SUITE_SEQ = 8, 32


def regime_settings(
    method: str, regime: str, *, batch_size: int = SUITE_BATCH, seq_len: int = SUITE_SEQ
) -> Settings:
    """The settings of ``method`` in a regime (``fp32`` or ``16-bit``), LLaMA LoRA targets."""
    sixteen = regime == "16-bit"
    return Settings(
        method=method,  # type: ignore[arg-type]  # one of full, lora, qlora
        weight_dtype="bfloat16" if sixteen else "float32",
        autocast=sixteen,
        batch_size=batch_size,
        seq_len=seq_len,
    )


@dataclass(frozen=True, slots=True)
class BreakEven:
    """The largest model of each method that fits one budget in one regime."""

    budget: str
    budget_bytes: float
    regime: str
    largest: dict[str, float]

    @property
    def qlora_needed_above(self) -> float:
        """QLoRA becomes necessary above the largest LoRA fit (up to its own largest fit)."""
        return self.largest["lora"]

    def to_data(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "budget_bytes": self.budget_bytes,
            "regime": self.regime,
            "largest_parameters": dict(self.largest),
            "qlora_needed_above_parameters": self.qlora_needed_above,
        }


def break_even_rows() -> list[BreakEven]:
    rows = []
    for regime in REGIMES:
        for label, budget in BUDGETS:
            largest = {
                m: largest_fitting(regime_settings(m, regime), budget)
                for m in ("full", "lora", "qlora")
            }
            rows.append(BreakEven(label, budget, regime, largest))
    return rows


def format_break_even(rows: list[BreakEven], *, tablefmt: str = "simple") -> str:
    headers = ["budget", "regime", "full", "lora", "qlora", "QLoRA needed from"]
    table = [
        [
            r.budget,
            r.regime,
            *(format_count(r.largest[m]) for m in ("full", "lora", "qlora")),
            f"> {format_count(r.qlora_needed_above)}",
        ]
        for r in rows
    ]
    return tabulate(table, headers=headers, tablefmt=tablefmt) + "\n"


@dataclass(frozen=True, slots=True)
class SeedRow:
    """One of the seed's hand figures beside the estimate."""

    figure: str
    seed: str
    estimate: str
    left_out: str


def seed_estimates(batch_size: int = SUITE_BATCH, seq_len: int = SUITE_SEQ) -> dict[str, Estimate]:
    lora = replace(regime_settings("lora", "16-bit"), batch_size=batch_size, seq_len=seq_len)
    qlora = replace(lora, method="qlora")
    return {"lora": estimate(LLAMA_7B, lora), "qlora": estimate(LLAMA_7B, qlora)}


def seed_rows(batch_size: int = SUITE_BATCH, seq_len: int = SUITE_SEQ) -> list[SeedRow]:
    """The seed's ~14 / ~16 / ~3.5 / ~5.5 GB for a 7B model against the estimator's LLaMA-7B."""
    est = seed_estimates(batch_size, seq_len)
    lora, qlora = est["lora"], est["qlora"]

    def gb(value: float) -> str:
        return f"{value / 1e9:.1f} GB ({format_bytes(value)})"

    return [
        SeedRow(
            "7B weights, 16-bit",
            "~14 GB",
            gb(lora.components["weights"]),
            "nothing: 6.74B parameters x 2 bytes",
        ),
        SeedRow(
            "7B LoRA training peak, 16-bit base",
            "~16 GB",
            gb(lora.peak_bytes),
            f"activations ({gb(lora.components['activations'])}), the process "
            f"({gb(lora.components['fixed'])}); adapters + AdamW are only "
            f"{gb(lora.components['adapters'] + lora.components['optimizer'])}, not ~2 GB",
        ),
        SeedRow(
            "7B weights, 4-bit NF4",
            "~3.5 GB",
            gb(qlora.weights_bytes),
            "the embeddings and output head stay 16-bit "
            f"({gb(2 * 2 * LLAMA_7B.vocab_size * LLAMA_7B.hidden_size)}), "
            f"quantization constants ({gb(qlora.components['quantization'])})",
        ),
        SeedRow(
            "7B QLoRA training peak",
            "~5.5 GB",
            gb(qlora.peak_bytes),
            "the 16-bit embeddings and head, activations, the process",
        ),
    ]


def format_seed_rows(rows: list[SeedRow], *, tablefmt: str = "simple") -> str:
    headers = ["figure", "seed (by hand)", "estimate", "what the hand arithmetic leaves out"]
    return (
        tabulate(
            [[r.figure, r.seed, r.estimate, r.left_out] for r in rows],
            headers=headers,
            tablefmt=tablefmt,
        )
        + "\n"
    )
