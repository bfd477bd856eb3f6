"""``adrbench estimate``: peak training memory by arithmetic, and how well it matches measurement.

Examples::

    adrbench estimate llama-7b --dtype bfloat16 --autocast --batch-size 1 --seq-len 512
    adrbench estimate bench/shapes/bert-335m.json --method lora --format json
    adrbench estimate --against results/evidence/memory-scaling/runs/<id>.json
    adrbench estimate --break-even

SHAPE is a named shape (``minilm-l6``, ``llama-7b``), a HF ``config.json`` or a model directory.
``--against RUN`` estimates every ``ok`` scenario of a run and prints the error of each;
``--break-even`` prints, per memory budget and method, the largest LLaMA-proportioned model whose
estimated peak fits. Exit status: 0, or 2 on bad input (an unreadable config, a missing key).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tabulate import tabulate

from adrbench.decisions.estimate import (
    COMPONENTS,
    NAMED_SHAPES,
    Architecture,
    Estimate,
    Settings,
    estimate,
    named_shape,
)
from adrbench.errors import UserError
from adrbench.units import format_bytes, format_count

__all__ = ["add_arguments", "load_architecture", "run"]

_METHODS = ("full", "lora", "qlora")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "shape",
        nargs="?",
        metavar="SHAPE",
        help=f"named shape ({', '.join(NAMED_SHAPES)}), a config.json or a model directory",
    )
    parser.add_argument(
        "--method", choices=(*_METHODS, "all"), default="all", help="default: all three"
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default="float32",
        help="storage of the base weights (default float32, as the engine trains)",
    )
    parser.add_argument("--autocast", action="store_true", help="16-bit activations")
    parser.add_argument(
        "--optimizer",
        choices=("adamw", "sgd"),
        default="adamw",
        help="optimizer whose states are counted (adamw: two fp32 moments a trainable parameter)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="sequences a step (a pair is two; default 8)"
    )
    parser.add_argument("--seq-len", type=int, default=32, help="tokens a sequence (default 32)")
    parser.add_argument("--lora-r", type=int, default=8, help="LoRA rank of the adapters")
    parser.add_argument(
        "--lora-targets",
        default=None,
        help="comma-separated layer names (default: BERT query,key,value,dense; "
        "LLaMA q_proj,k_proj,v_proj,o_proj)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="device kind whose calibration constants apply (fixed overhead, activations)",
    )
    parser.add_argument(
        "--fixed", default=None, metavar="BYTES", help="override the fixed overhead, e.g. 600MiB"
    )
    parser.add_argument(
        "--against",
        action="append",
        default=[],
        type=Path,
        metavar="RUN",
        help="a results file: estimate each of its ok scenarios and show the error (repeatable)",
    )
    parser.add_argument(
        "--shape-of",
        action="append",
        default=[],
        metavar="MODEL=SHAPE",
        help="for --against: the named shape of a model whose directory is not here "
        "(e.g. /tmp/model=minilm-l6)",
    )
    parser.add_argument(
        "--break-even",
        action="store_true",
        help="largest LLaMA-proportioned model that fits 8, 16, 24 and 80 GB, per method",
    )
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format"
    )


def load_architecture(spec: str) -> Architecture:
    """A named shape, or the config.json at ``spec`` (a file or a model directory)."""
    if spec in NAMED_SHAPES:
        return named_shape(spec)
    path = Path(spec)
    if not path.exists():
        raise UserError(
            f"{spec}: neither a named shape ({', '.join(NAMED_SHAPES)}) nor a file or directory"
        )
    return Architecture.from_config(path)


def _targets(args: argparse.Namespace) -> tuple[str, ...] | None:
    if args.lora_targets:
        return tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
    return None  # the family's usual targets


def _fixed(text: str | None) -> int | None:
    if text is None:
        return None
    from adrbench.units import parse_quantity

    try:
        return int(parse_quantity(text))
    except ValueError as error:
        raise UserError(f"--fixed {text}: {error}; write e.g. 600MiB") from None


def settings_from_args(args: argparse.Namespace, arch: Architecture, method: str) -> Settings:
    return Settings(
        method=method,  # type: ignore[arg-type]  # argparse choices
        weight_dtype=args.dtype,
        autocast=args.autocast,
        optimizer=args.optimizer,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        lora_r=args.lora_r,
        lora_targets=_targets(args),
        device=args.device,
        fixed_bytes=_fixed(args.fixed),
    )


def estimate_data(result: Estimate) -> dict[str, Any]:
    """JSON-ready form of one estimate."""
    s = result.settings
    return {
        "architecture": result.architecture,
        "parameters": result.parameters,
        "trainable_parameters": result.trainable_parameters,
        "settings": {
            "method": s.method,
            "weight_dtype": s.weight_dtype,
            "autocast": s.autocast,
            "optimizer": s.optimizer,
            "batch_size": s.batch_size,
            "seq_len": s.seq_len,
            "lora_r": s.lora_r,
            "lora_targets": list(s.lora_targets) if s.lora_targets else None,
            "device": s.device,
        },
        "components_bytes": dict(result.components),
        "weights_bytes": result.weights_bytes,
        "peak_bytes": result.peak_bytes,
    }


def _estimate_table(results: list[Estimate]) -> str:
    headers = ["component", *(r.settings.method for r in results)]
    rows = [[name, *(format_bytes(r.components[name]) for r in results)] for name in COMPONENTS]
    rows.append(["peak", *(format_bytes(r.peak_bytes) for r in results)])
    rows.append(["trainable", *(format_count(r.trainable_parameters) for r in results)])
    first = results[0]
    s = first.settings
    base = first.parameters - (first.trainable_parameters if s.method != "full" else 0)
    head = (
        f"{first.architecture}: {format_count(base)} "
        f"parameters; {s.weight_dtype} weights{', 16-bit autocast' if s.autocast else ''}, "
        f"{s.optimizer}, {s.batch_size} sequences x {s.seq_len} tokens, device {s.device}; "
        "peak = fixed + weights + quantization + adapters + optimizer "
        "+ max(activations, gradients + temporaries)"
    )
    return head + "\n" + tabulate(rows, headers=headers, tablefmt="simple") + "\n"


def _against(args: argparse.Namespace) -> str:
    from adrbench.decisions.calibration import measured_points
    from adrbench.results.store import load_run

    shapes: dict[str, str] = {}
    for item in args.shape_of:
        model, sep, name = item.partition("=")
        if not sep:
            raise UserError(f"--shape-of {item!r}: expected MODEL=SHAPE, e.g. /tmp/model=minilm-l6")
        shapes[model] = name
    runs = [load_run(path) for path in args.against]
    points = measured_points(runs, shapes=shapes, fixed_bytes=_fixed(args.fixed))
    if args.format == "json":
        return (
            json.dumps(
                [
                    {
                        "run_id": p.run_id,
                        "scenario": p.scenario,
                        "counter": p.counter,
                        "counted_bytes": p.counted_bytes,
                        "measured_bytes": p.measured_bytes,
                        "estimate": estimate_data(p.estimate),
                        "error": p.error,
                    }
                    for p in points
                ],
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )
    rows = [
        [
            p.scenario,
            p.device,
            format_count(p.estimate.parameters),
            f"{p.estimate.settings.batch_size}x{p.estimate.settings.seq_len}",
            p.counter,
            format_bytes(p.measured_bytes),
            format_bytes(p.estimate.peak_bytes),
            format_bytes(p.counted_bytes),
            f"{p.error:+.1%}",
        ]
        for p in points
    ]
    headers = [
        "scenario",
        "device",
        "parameters",
        "seqs x len",
        "counter",
        "measured",
        "estimate",
        "as counted",
        "error",
    ]
    worst = max((abs(p.error) for p in points), default=0.0)
    partial = sorted({p.counter for p in points if p.counted_bytes != p.estimate.peak_bytes})
    note = (
        f"; {', '.join(partial)} sees part of the peak: the error is against 'as counted' "
        "(the estimate without mapped weights, file pages and the optimizer's temporaries)"
        if partial
        else ""
    )
    return (
        tabulate(rows, headers=headers, tablefmt="simple")
        + f"\n{len(points)} points; largest absolute error {worst:.1%}{note}\n"
    )


def run(args: argparse.Namespace) -> int:
    if args.against:
        print(_against(args), end="")
        return 0
    if args.break_even:
        from adrbench.decisions.breakeven import break_even_rows, format_break_even

        rows = break_even_rows()
        if args.format == "json":
            print(json.dumps([r.to_data() for r in rows], indent=2, sort_keys=True))
        else:
            print(format_break_even(rows), end="")
        return 0
    if args.shape is None:
        raise UserError(
            "give a SHAPE (minilm-l6, llama-7b, a config.json), --against or --break-even"
        )
    arch = load_architecture(args.shape)
    methods = _METHODS if args.method == "all" else (args.method,)
    results = [estimate(arch, settings_from_args(args, arch, m)) for m in methods]
    if args.format == "json":
        print(json.dumps([estimate_data(r) for r in results], indent=2, sort_keys=True))
    else:
        print(_estimate_table(results), end="")
    return 0
