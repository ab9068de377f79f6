#!/usr/bin/env bash
# The operator on a real control plane: Task resources per second, status
# writes per Task, completion → visible-status lag (bench-operator); how fast
# a WorkerPool's Deployment follows its queue (bench-scale); the worker API
# with TokenReview-authenticated workers against the shared token
# (bench-auth). Starts a throwaway cluster
# (tests/cluster/up.sh, kwok nodes only), an operator and workers from the
# release build, prints bench-operator's JSON lines, and stops everything.
#
#   bench/operator.sh [TASKS]        default 1000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tasks=${1:-1000}
cargo build --release -q -p kontinuum-bench -p kontinuum-worker -p kontinuum-operator --bins
bin=$PWD/target/release

work=$(mktemp -d)
cluster=
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n $cluster ]] && tests/cluster/down.sh "$cluster" >&2 || true
  rm -rf "$work"
}
trap cleanup EXIT

KONTINUUM_REAL_NODE=0 tests/cluster/up.sh >"$work/env"
# shellcheck disable=SC1091
source "$work/env"
cluster=$KONTINUUM_CLUSTER_DIR
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace bench >/dev/null

echo "bench-operator-token" >"$work/token"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$bin/kontinuum-operator" --data "$work/store" --listen "127.0.0.1:$port" \
  --metrics-listen 127.0.0.1:0 --token-file "$work/token" --leader-elect=false \
  --namespace bench >"$work/operator.log" 2>&1 &
pids+=($!)
for i in 1 2; do
  RUST_LOG=warn "$bin/kontinuum-worker" --server "http://127.0.0.1:$port" --pool default \
    --token-file "$work/token" --concurrency 64 --name "bench-$i" >"$work/worker-$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do
  curl -fs -H "Authorization: Bearer $(cat "$work/token")" "http://127.0.0.1:$port/v1/workers" >/dev/null && break
  sleep 0.1
done
"$bin/bench-operator" --namespace bench --tasks "$tasks"
"$bin/bench-scale" --namespace bench --api "http://127.0.0.1:$port" --token-file "$work/token"
"$bin/bench-auth"
