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
#
# The bench namespace gets the chart's finalizer policy (as `helm install`
# gives it on Kubernetes 1.36+); FINALIZER_POLICY=0 leaves it out, so that
# the operator writes each finalizer itself.
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
if [[ ${FINALIZER_POLICY:-1} != 0 ]]; then
  helm template kontinuum charts/kontinuum --namespace bench --set finalizerPolicy.enabled=true \
    --set 'watchNamespaces={bench}' --show-only templates/finalizer-policy.yaml | kubectl apply -f - >/dev/null
  # The API server takes a moment to load a new policy: wait until a dry
  # run of a create shows the finalizer.
  probe='{"apiVersion":"kontinuum.dev/v1alpha1","kind":"Task","metadata":{"name":"probe"},"spec":{"call":{"function":"std.echo"}}}'
  for _ in $(seq 100); do
    kubectl create --dry-run=server -n bench -o 'jsonpath={.metadata.finalizers}' -f - <<<"$probe" |
      grep -q kontinuum.dev/cancel && break
    sleep 0.2
  done
fi

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
# A cluster that has just started is still busy with itself (the
# controller-manager's first syncs, discovery of the new CRDs): measure the
# steady state. Wait until the control plane's daemons use under 15 % of a
# core over 2 s (at most 90 s).
cluster_cpu() {
  local total=0 pid
  for f in "$cluster"/run/*.pid; do
    pid=$(cat "$f")
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
settle_start=$SECONDS
while ((SECONDS - settle_start < 90)); do
  before=$(cluster_cpu); sleep 2; after=$(cluster_cpu)
  # clock ticks (100/s) over 2 s: 30 ticks = 15 % of a core.
  ((after - before < 30)) && break
done
echo "control plane settled after $((SECONDS - settle_start)) s" >&2
"$bin/bench-operator" --namespace bench --tasks "$tasks"
"$bin/bench-scale" --namespace bench --api "http://127.0.0.1:$port" --token-file "$work/token"
"$bin/bench-auth"
