#!/usr/bin/env bash
# Runs every benchmark on this machine and prints one JSON line each, then
# the peers (Ray, Celery) in the same run with Kontinuum's ratio to each.
#   bench/run.sh            all, 10,000 peer tasks
#   PEER_TASKS=0 bench/run.sh   without peers
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -q -p kontinuum-bench -p kontinuum-worker --bins
bin=target/release
"$bin/bench-squares"
"$bin/bench-tree" 1000000
"$bin/bench-remote" 100000
"$bin/bench-submit" 50000
"$bin/bench-scrape" --runs 8 --tasks 100000 --scrape-ms 100
if [[ ${PEER_TASKS:-10000} -gt 0 ]]; then
  "$bin/bench-noop" --tasks 100000 --peers --peer-tasks "${PEER_TASKS:-10000}"
else
  "$bin/bench-noop" --tasks 100000
fi
