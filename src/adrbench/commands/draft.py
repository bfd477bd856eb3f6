"""``adrbench draft ADR``: write a ``proposed`` ADR superseding one whose revisit trigger fired.

Example::

    adrbench draft 2          # ADR-0002's `cuda` trigger fired on a CUDA machine's run

Each environment with evidence is judged (as ``check`` does); the draft cites every environment
where a trigger of the ADR fired, and is written as ``adr/NNNN-revisit-<slug>.md`` with the next
free number, for a person to finish. Exit status: 0 written; 2 bad input, including an ADR none of
whose triggers fired anywhere (nothing to supersede) or a draft file that already exists.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from adrbench.commands import add_adr_options, add_no_probes, add_results_dir, ensure_adr_dir
from adrbench.decisions.adr import adr_paths, load_adrs, resolve_adr_args
from adrbench.decisions.draft import FiredEvidence, draft_file_name, render_draft
from adrbench.decisions.verdicts import judge_environments
from adrbench.errors import UserError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("adr", metavar="ADR", help="the ADR whose trigger fired (file or number)")
    add_adr_options(parser, positional=False)
    add_results_dir(parser)
    add_no_probes(parser)


def run(args: argparse.Namespace) -> int:
    ensure_adr_dir(args.adr_dir)
    (path,) = resolve_adr_args(args.adr_dir, [args.adr])
    old = next((a for a in load_adrs(args.adr_dir) if a.path.resolve() == path.resolve()), None)
    if old is None:
        raise UserError(
            f"{path}: not a numbered ADR in {args.adr_dir} (an ADR file is NNNN-title.md); name "
            "the ADR whose trigger fired, e.g. `adrbench draft 2`"
        )
    paths = adr_paths(args.adr_dir)
    number = max((int(p.name[:4]) for p in paths), default=0) + 1
    target = args.adr_dir / draft_file_name(number, old)
    slug = target.name.split("-", 1)[1]
    existing = next((p for p in paths if p.name.split("-", 1)[1] == slug), None)
    if existing is not None:
        raise UserError(
            f"{existing}: a draft revisiting ADR-{old.number:04d} already exists; finish or "
            "delete it first"
        )
    evidence = []
    for environment in judge_environments(
        args.adr_dir, args.results_dir, probes=args.probes, only=[path]
    ):
        for judgement in environment.judgements:  # one per evidence suite with a run there
            if judgement.run is None:
                continue
            item = FiredEvidence(judgement.run, judgement.verdicts[0])
            if item.fired:
                evidence.append(item)
    if not evidence:
        raise UserError(
            f"{path}: none of its revisit triggers fired on any environment with evidence in "
            f"{args.results_dir}/runs; nothing to supersede (see `adrbench check {old.number}`)"
        )
    date = datetime.now(UTC).date().isoformat()
    with target.open("x", encoding="utf-8") as handle:  # never over a file made meanwhile
        handle.write(render_draft(old, evidence, date=date))
    fired = sorted({v.id for e in evidence for v in e.fired})
    print(f"wrote {target} (proposed, supersedes ADR-{old.number:04d}; fired: {', '.join(fired)})")
    return 0
