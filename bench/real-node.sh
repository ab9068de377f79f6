#!/usr/bin/env bash
# The operator and its workers as real containers on the test cluster's real
# node, installed by helm: how long `helm install` takes to a Ready operator
# pod, how long a first job takes from `kubectl apply` to its first worker
# pod Running and its first task done (the pool starting at zero), and the
# 1,000-Task throughput of bench-operator with the workers in pods.
#
#   bench/real-node.sh [TASKS]        default 1000; needs root (the real node)
#
# Starts its own cluster (KONTINUUM_REAL_NODE=1 tests/cluster/up.sh), which
# waits while another cluster holds the machine's real node. Prints one JSON
# line of timings, then bench-operator's line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tasks=${1:-1000}
cargo build --release -q -p kontinuum-bench --bin bench-operator
bin=$PWD/target/release
archive=$(scripts/build-image)

work=$(mktemp -d)
cluster=
cleanup() {
  [[ -n $cluster ]] && tests/cluster/down.sh "$cluster" >&2 || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { python3 -c "import sys; print(round($(now) - $1, 2))"; }

start=$(now)
KONTINUUM_REAL_NODE=1 tests/cluster/up.sh >"$work/env"
cluster_start=$(since "$start")
# shellcheck disable=SC1091
source "$work/env"
cluster=$KONTINUUM_CLUSTER_DIR
tag=$(tests/cluster/import-image.sh "$archive" | sed -n 's/^kontinuum\.dev\/kontinuum://p')
kubectl create namespace bench >/dev/null

placement='"nodeSelector": {"kontinuum.dev/real-node": "true"},
  "tolerations": [{"key": "kontinuum.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}]'
cat >"$work/values.yaml" <<EOF
{"image": {"tag": "$tag", "pullPolicy": "Never"},
 "watchNamespaces": ["kontinuum-system", "bench"],
 $placement,
 "workerPool": {"enabled": false}}
EOF
start=$(now)
helm install kontinuum charts/kontinuum -n kontinuum-system --create-namespace \
  -f "$work/values.yaml" >/dev/null
kubectl wait -n kontinuum-system --for=condition=Ready pod \
  -l app.kubernetes.io/component=operator --timeout=300s >/dev/null
install_ready=$(since "$start")

# The first job: a pool at zero and one Task.
start=$(now)
kubectl apply -n bench -f - >/dev/null <<EOF
{"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
 "metadata": {"name": "default"},
 "spec": {"concurrency": 64,
          "scaling": {"minReplicas": 0, "maxReplicas": 2, "targetPerReplica": 64, "scaleDownDelay": "10m"},
          "template": {"spec": {$placement}}}}
---
{"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task", "metadata": {"name": "first"},
 "spec": {"call": {"function": "std.echo", "args": {"hello": "pods"}}}}
EOF
until kubectl get pods -n bench -l kontinuum.dev/pool=default \
  -o jsonpath='{.items[*].status.phase}' | grep -q Running; do sleep 0.1; done
pod_running=$(since "$start")
until [[ $(kubectl get task first -n bench -o jsonpath='{.status.phase}') == Succeeded ]]; do sleep 0.1; done
first_task=$(since "$start")
printf '{"bench":"real-node","cluster_up_s":%s,"helm_install_to_operator_ready_s":%s,"apply_to_first_worker_pod_running_s":%s,"apply_to_first_task_succeeded_s":%s}\n' \
  "$cluster_start" "$install_ready" "$pod_running" "$first_task"

"$bin/bench-operator" --namespace bench --tasks "$tasks"
kubectl delete tasks --all -n bench --timeout=120s >/dev/null
helm uninstall kontinuum -n kontinuum-system --wait --timeout 120s >/dev/null
