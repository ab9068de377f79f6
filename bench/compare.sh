#!/usr/bin/env bash
# Two commits side by side: builds each one's release bench binaries (cached
# by commit under ~/.cache/kontinuum/bench-bin/SHA) and alternates their runs
# of one benchmark in the same minutes, so the machine's drift hits both.
#
#   bench/compare.sh A B BENCH [ARGS...]
#   RUNS=5 METRIC=tasks_per_sec bench/compare.sh c73594b HEAD bench-noop --tasks 100000
#
# BENCH is a binary of the kontinuum-bench crate; it prints JSON lines, and
# METRIC (default tasks_per_sec) is read from its last line that has it.
# Prints both series, their medians and the ratio B / A. A speed-up or a
# "no regression" is this ratio, never figures from different days.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
(($# >= 3)) || { echo "usage: bench/compare.sh A B BENCH [ARGS...]" >&2; exit 2; }
a=$1 b=$2 bench=$3
shift 3
RUNS=${RUNS:-5}
METRIC=${METRIC:-tasks_per_sec}
cache=${KONTINUUM_CACHE:-$HOME/.cache/kontinuum}/bench-bin
# One target dir for every commit: their dependencies are built once.
target=${KONTINUUM_CACHE:-$HOME/.cache/kontinuum}/bench-target

# build REV: prints the dir holding REV's bench binaries.
build() {
  local sha dir work
  sha=$(git rev-parse --verify "$1^{commit}") || { echo "no commit $1" >&2; exit 2; }
  dir=$cache/$sha
  if [[ ! -x $dir/$bench ]]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/kontinuum-compare.XXXXXX")
    git worktree add --detach -q "$work" "$sha"
    echo "building $1 ($sha) ..." >&2
    (cd "$work" && CARGO_TARGET_DIR=$target cargo build --release -q -p kontinuum-bench --bins) >&2
    mkdir -p "$dir"
    find "$target/release" -maxdepth 1 -type f -name 'bench-*' -perm -u+x -exec cp {} "$dir/" \;
    git worktree remove --force "$work"
  fi
  [[ -x $dir/$bench ]] || { echo "$1 has no binary $bench" >&2; exit 2; }
  echo "$dir"
}

dir_a=$(build "$a")
dir_b=$(build "$b")

# run DIR: the metric of one run.
run() {
  local dir=$1 out
  shift
  out=$("$dir/$bench" "$@" 2>/dev/null) || { echo "$bench failed in $dir" >&2; exit 1; }
  printf '%s\n' "$out" | python3 -c '
import json, sys
metric, value = sys.argv[1], None
for line in sys.stdin:
    try:
        v = json.loads(line).get(metric)
    except (ValueError, AttributeError):
        continue
    if v is not None:
        value = v
if value is None:
    sys.exit("no " + metric + " in the output")
print(value)' "$METRIC"
}

declare -a series_a series_b
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
  # Alternate which goes first, so neither always gets the warmer machine.
  if ((i % 2)); then
    series_a+=("$(run "$dir_a" "$@")"); series_b+=("$(run "$dir_b" "$@")")
  else
    series_b+=("$(run "$dir_b" "$@")"); series_a+=("$(run "$dir_a" "$@")")
  fi
  echo "run $i: $a ${series_a[-1]}, $b ${series_b[-1]} ($METRIC)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$a" "$b" "${series_a[*]}" "${series_b[*]}" <<'PY'
import statistics, sys
a, b, sa, sb = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
ma, mb = statistics.median(map(float, sa)), statistics.median(map(float, sb))
print(f"{a}: {' '.join(sa)}  median {ma:g}")
print(f"{b}: {' '.join(sb)}  median {mb:g}")
print(f"ratio {b} / {a}: {mb / ma:.3f}")
PY
