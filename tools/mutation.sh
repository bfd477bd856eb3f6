#!/usr/bin/env bash
# Mutation testing of the modules that decide things: is each one's test file able to notice a
# wrong decision? Not run in CI (CPU-hungry: one pytest run per mutant).
#
#   tools/mutation.sh                 # every module below, sampled as listed
#   ONLY=stats K=1 tools/mutation.sh  # one module, every line
#   REV=9c9a358 MUTATION_DIR=/tmp/mut-before K=1 tools/mutation.sh   # an older commit's tests
#   K=2 OFFSET=1 ONLY=stats MUTATION_DIR=/tmp/mut-odd tools/mutation.sh # the odd lines: with
#                                     # OFFSET=0 in another MUTATION_DIR, all lines on two cores
#
# Needs mutmut 2 (its --use-patch-file lets us sample lines) outside the project's env:
#   pip install --target .mutmut-lib 'mutmut==2.5.1' whatthepatch
# It mutates files in place, so it works on a copy of the tree in $MUTATION_DIR (default
# /tmp/adrbench-mutation), never on your checkout. A line is mutated when its number minus
# OFFSET (default 0) is a multiple of K (a deterministic sample; K=1 = all; OFFSET 0..K-1 split
# the lines into K disjoint shards). Results: $MUTATION_DIR/mut-NAME.log, and
# `python -m mutmut results` / `python -m mutmut show ID` run in $MUTATION_DIR.
# Score = (killed + timed out + suspicious) / tested; "suspicious" is killed, only slowly.
# mutmut 2 counts only pytest's exit status 1 as a kill; a mutant that breaks the import (exit 2,
# e.g. an enum value set to None) would read as "survived", so the runner maps any failure to 1.
# A timeout is 10x the first baseline run: on a loaded machine, rerun timeouts before trusting
# them (reset them to 'untested' in .mutmut-cache). mutmut's timeout kills only the runner's bash:
# a mutant that loops forever (e.g. in stats.repetitions_to_resolve) left its pytest running,
# holding the output pipe, and mutmut waited on it for ever; so each test run is also capped by
# `timeout` at $MUTANT_TIMEOUT seconds (default 150), which counts as a kill (exit 1).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
lib="${MUTMUT_LIB:-$repo/.mutmut-lib}"
work="${MUTATION_DIR:-/tmp/adrbench-mutation}"
python="${PYTHON:-python}"

# name  module  K  test files (only the module's own tests run against each mutant)
MODULES=(
  "stats src/adrbench/stats.py 2 tests/test_stats.py tests/test_uncertainty.py"
  "baseline src/adrbench/gate/baseline.py 3 tests/test_baseline.py"
  "verdicts src/adrbench/decisions/verdicts.py 4 tests/test_verdicts.py"
  "expressions src/adrbench/decisions/expressions.py 6 tests/test_expressions.py"
  "rules src/adrbench/gate/rules.py 6 tests/test_gate.py"
)

mkdir -p "$work"
# A fresh copy of the committed tree (REV, default HEAD), keeping the mutmut cache (killed mutants
# stay killed: use a new MUTATION_DIR for another REV).
git -C "$repo" archive "${REV:-HEAD}" | tar -x -C "$work"
cd "$work"
export PYTHONPATH="$lib:$work/src" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg

run_one() {
  local name=$1 target=$2 k=$3; shift 3
  "$python" - "$target" "$k" "${OFFSET:-0}" > "sample-$name.patch" <<'PY'
import sys
path, k, offset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = open(path).read().splitlines()
added = sum(1 for n in range(1, len(lines) + 1) if (n - offset) % k == 0)
print(f"--- a/{path}\n+++ b/{path}\n@@ -1,{len(lines) - added} +1,{len(lines)} @@")
for n, line in enumerate(lines, start=1):
    print(("+" if (n - offset) % k == 0 else " ") + line)
PY
  echo "== $name: $target, every ${k}th line (offset ${OFFSET:-0}), against $*"
  nice -n 19 "$python" -m mutmut run --paths-to-mutate "$target" --tests-dir tests \
    --no-progress --use-patch-file "sample-$name.patch" \
    --test-time-multiplier 4 --test-time-base 20 \
    --runner "bash -c 'timeout -k 5 ${MUTANT_TIMEOUT:-150} $python -m pytest -x -q -p no:cacheprovider $* || exit 1'" \
    > "mut-$name.log" 2>&1 || true
  "$python" - "$target" "$k" "${OFFSET:-0}" <<'PY'
import sqlite3, sys
path, k, offset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = sqlite3.connect(".mutmut-cache").execute(
    "select l.line_number, m.status from Mutant m join Line l on m.line = l.id "
    "join SourceFile s on l.sourcefile = s.id where s.filename = ?", (path,)).fetchall()
counts: dict[str, int] = {}
for line, status in rows:
    if (line + 1 - offset) % k == 0:
        counts[status] = counts.get(status, 0) + 1
killed = sum(counts.get(s, 0) for s in ("ok_killed", "ok_suspicious", "bad_timeout"))
tested = sum(v for s, v in counts.items() if s != "untested")
print(f"   {counts}; killed {killed}/{tested}" + (f" = {100 * killed / tested:.0f}%" if tested else ""))
PY
}

for spec in "${MODULES[@]}"; do
  set -- $spec
  name=$1
  if [[ -n "${ONLY:-}" && "$ONLY" != "$name" ]]; then continue; fi
  target=$2; k=${K:-$3}; shift 3
  run_one "$name" "$target" "$k" "$@"
done
