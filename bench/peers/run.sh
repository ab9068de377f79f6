#!/usr/bin/env bash
# Peer no-op benchmarks: Ray and Celery run the same workload as Kontinuum's
# `std.echo` benchmark (N tasks that return their argument, submitted, then
# all awaited).
#
#   bench/peers/run.sh [N]        (N defaults to 10000)
#
# stdout: exactly one JSON line per system that finished, in this order,
#   {"system":"ray","tasks":N,"seconds":S,"tasks_per_sec":R}
#   {"system":"celery","tasks":N,"seconds":S,"tasks_per_sec":R}
# (S: wall seconds from the first submission to the last result, start-up
# and warm-up excluded; R = N / S.)
# stderr: everything else (set-up, the peers' logs).
# Exit status: 0 when every system printed its line, 1 otherwise.
#
# Env: PEERS_SYSTEMS (default "ray celery"), PEERS_TIMEOUT (seconds each
# system may take, start-up included; default 900), PEERS_WARMUP (untimed
# tasks before the timed run; default 200).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
n="${1:-10000}"
case "$n" in
  ''|*[!0-9]*|0) echo "usage: $0 [N]   (N: a positive integer)" >&2; exit 2 ;;
esac
systems="${PEERS_SYSTEMS:-ray celery}"
limit="${PEERS_TIMEOUT:-900}"
warmup="${PEERS_WARMUP:-200}"

py="$("$here/setup.sh")" || { echo "peers/run: setup failed" >&2; exit 1; }

rc=0
for s in $systems; do
  script="$here/${s}_noop.py"
  if [ ! -f "$script" ]; then
    echo "peers/run: unknown system '$s'" >&2; rc=1; continue
  fi
  echo "peers/run: $s, N=$n" >&2
  # The script bounds itself (--timeout, then a hard alarm); `timeout` is the
  # last resort: SIGTERM (the script cleans up), SIGKILL 30 s later.
  timeout -k 30 "$limit" "$py" "$script" "$n" --warmup "$warmup" \
    --timeout "$(( limit > 120 ? limit - 90 : limit * 3 / 4 ))"
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "peers/run: $s failed (exit $status)" >&2
    rc=1
  fi
done
exit "$rc"
