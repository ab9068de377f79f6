#!/usr/bin/env bash
# Word count over 1 GiB of text in object storage against the same text on
# local disk, and against `cat | wc -w` (the physical reference), in the
# same minutes: runs alternate, `RUNS` of each (default 3).
#
#   bench/objects.sh            # prints one line per run and the medians
#
# The store is s3s-fs from the test cluster's cache (tests/cluster/build.sh
# s3) on loopback; the text is 16 objects of 64 MiB, uploaded with curl's
# SigV4; `kontinuum run` maps std.wordcount with merge over both sources.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cluster/versions.env
RUNS=${RUNS:-3}
tests/cluster/build.sh s3
cargo build --release -q -p kontinuum-cli --bin kontinuum
kontinuum=$PWD/target/release/kontinuum
s3s=${KONTINUUM_CACHE:-$HOME/.cache/kontinuum}/s3s-fs/$S3S_FS_VERSION/bin/s3s-fs

work=$(mktemp -d "${TMPDIR:-/tmp}/kontinuum-bench-objects.XXXXXX")
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# 16 MiB of text from a small vocabulary (as bench data, not Shakespeare),
# repeated to 1 GiB: 16 objects of 64 MiB, and their concatenation on disk.
python3 - "$work/chunk.txt" <<'PY'
import random, sys
words = "the quick brown fox jumps over a lazy dog sphinx of black quartz judge my vow 42".split()
rng = random.Random(7)
out, size = [], 0
while size < 16 << 20:
    line = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) + "\n"
    out.append(line); size += len(line)
open(sys.argv[1], "w").write("".join(out))
PY
mkdir -p "$work/s3/corpus" "$work/objects"
for i in $(seq -w 0 15); do
  cat "$work/chunk.txt" "$work/chunk.txt" "$work/chunk.txt" "$work/chunk.txt" >"$work/objects/part-$i.txt"
done
cat "$work"/objects/part-*.txt >"$work/all.txt"
bytes=$(stat -c %s "$work/all.txt")

port=$((20000 + RANDOM % 10000))
key=bench secret=$(openssl rand -hex 20)
setsid "$s3s" --host 127.0.0.1 --port "$port" --access-key "$key" --secret-key "$secret" "$work/s3" \
  >"$work/s3s.log" 2>&1 &
pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
for f in "$work"/objects/part-*.txt; do
  curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$f" \
    "http://127.0.0.1:$port/corpus/text/$(basename "$f")" >/dev/null
done
rm -rf "$work/objects"

manifest() { # NAME SOURCE
  printf 'apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {name: %s}\nspec:\n  map:\n    source: %s\n    function: {function: std.wordcount}\n    shardSize: 100000\n    reduce: merge\n' "$1" "$2"
}
manifest disk "{lines: {path: '$work/all.txt'}}" >"$work/disk.yaml"
manifest objects "{objects: {url: 's3://corpus/text/', endpoint: 'http://127.0.0.1:$port'}}" >"$work/objects.yaml"

# seconds of one command, its output checked by a grep
timed() { # WHAT CMD...
  local what=$1; shift
  local start end
  start=$(date +%s.%N)
  "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; echo "$what failed" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

declare -a disk objects pipe
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $bytes bytes; $(nproc) cores"
for r in $(seq "$RUNS"); do
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  objects+=("$(AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret timed objects "$kontinuum" run -o json "$work/objects.yaml")")
  grep -q '"phase": "Succeeded"' "$work/out" || { echo "objects run did not succeed" >&2; exit 1; }
  cp "$work/out" "$work/objects.json"
  disk+=("$(timed disk "$kontinuum" run -o json "$work/disk.yaml")")
  cp "$work/out" "$work/disk.json"
  pipe+=("$(timed pipe sh -c "cat '$work/all.txt' | wc -w")")
  printf 'run %d: objects %.1f s, disk %.1f s, cat|wc -w %.1f s\n' "$r" "${objects[-1]}" "${disk[-1]}" "${pipe[-1]}"
done
# The two maps must agree before their speeds mean anything.
python3 - "$work/objects.json" "$work/disk.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["status"]["result"] for p in sys.argv[1:3])
assert a == b, "the counts differ"
print("counts equal: %d words" % sum(a.values()))
PY
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mo=$(median "${objects[@]}") md=$(median "${disk[@]}") mp=$(median "${pipe[@]}")
mb=$(echo "$bytes / 1048576" | bc -l)
printf 'medians: objects %.1f s (%.0f MiB/s), disk %.1f s (%.0f MiB/s), cat|wc -w %.1f s (%.0f MiB/s)\n' \
  "$mo" "$(echo "$mb / $mo" | bc -l)" "$md" "$(echo "$mb / $md" | bc -l)" "$mp" "$(echo "$mb / $mp" | bc -l)"
printf 'objects / disk throughput: %.0f %%; objects / cat|wc -w: %.0f %%\n' \
  "$(echo "100 * $md / $mo" | bc -l)" "$(echo "100 * $mp / $mo" | bc -l)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
