#!/usr/bin/env bash
# The finalizer policy's window on a fresh cluster. Right after the CRDs are
# created for the first time, a MutatingAdmissionPolicy that matches Tasks
# makes the API server refuse their creates (503 "Resource kind ... not
# found") until it has re-read its OpenAPI document. This measures, per
# fresh cluster (kwok nodes only):
#   - established_s   CRDs applied → all three Established
#   - refused         dry-run creates refused with that 503 (one every ~0.1 s)
#   - admitted_s      CRDs applied → the first create admitted with the finalizer
#   - up_s            CRDs applied → the operator's controllers run (its log
#                     line "worker API up"; before the readiness probe,
#                     /readyz answered 200 here)
#   - ready_s         CRDs applied → the operator's /readyz answers 200
#   - at_ready        a dry-run create made as soon as /readyz said 200:
#                     "admitted" or the refusal (the operator must not report
#                     ready inside the window)
# The policy (the chart's, bound to the namespace `default`) and the operator
# start right after the CRDs are Established, as `helm install` does it.
#
#   bench/admission-window.sh [RUNS]     default 3
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-3}
cargo build --release -q -p kontinuum-operator --bins
bin=$PWD/target/release

work=$(mktemp -d)
cluster=
operator=
cleanup() {
  [[ -n $operator ]] && kill "$operator" 2>/dev/null || true
  wait 2>/dev/null || true
  operator=
  [[ -n $cluster ]] && tests/cluster/down.sh "$cluster" >&2 || true
  cluster=
}
trap 'cleanup; rm -rf "$work"' EXIT

probe='{"apiVersion":"kontinuum.dev/v1alpha1","kind":"Task","metadata":{"generateName":"probe-"},"spec":{"call":{"function":"std.echo"}}}'
# One dry-run create: prints "admitted" (with the finalizer), "plain"
# (admitted, the policy not loaded yet), "window" (the 503) or the error.
try_create() {
  local out
  if out=$(kubectl create --dry-run=server -n default -o 'jsonpath={.metadata.finalizers}' -f - <<<"$probe" 2>&1); then
    [[ $out == *kontinuum.dev/cancel* ]] && echo admitted || echo plain
  elif [[ $out == *"There can be a delay between when CustomResourceDefinitions"* ]]; then
    echo window
  else
    echo "error: $out" | tr '\n' ' '
  fi
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

for run in $(seq "$runs"); do
  KONTINUUM_REAL_NODE=0 tests/cluster/up.sh >"$work/env"
  # shellcheck disable=SC1091
  source "$work/env"
  cluster=$KONTINUUM_CLUSTER_DIR
  policy=$(helm template kontinuum charts/kontinuum --namespace default --set finalizerPolicy.enabled=true \
    --set 'watchNamespaces={default}' --show-only templates/finalizer-policy.yaml)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

  t0=$(now)
  kubectl apply -f crds/ >/dev/null
  kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
  established=$(since "$t0")
  kubectl apply -f - <<<"$policy" >/dev/null
  rm -rf "$work/store"
  RUST_LOG=info "$bin/kontinuum-operator" --data "$work/store" --listen 127.0.0.1:0 \
    --metrics-listen "127.0.0.1:$port" --leader-elect=false --namespace default \
    >"$work/operator-$run.log" 2>&1 &
  operator=$!

  refused=0 admitted= ready= at_ready=
  while [[ -z $admitted || -z $ready ]]; do
    if [[ -z $ready ]] && curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; then
      ready=$(since "$t0")
      at_ready=$(try_create)
    fi
    if [[ -z $admitted ]]; then
      case $(try_create) in
        admitted) admitted=$(since "$t0") ;;
        window) refused=$((refused + 1)) ;;
      esac
    fi
    if awk -v s="$(since "$t0")" 'BEGIN { exit !(s > 60) }'; then
      echo "gave up after 60 s" >&2
      break
    fi
    sleep 0.1
  done
  up_at=$(grep -m1 "worker API up" "$work/operator-$run.log" | cut -d' ' -f1)
  up=$(awk -v a="$t0" -v b="$(date -d "$up_at" +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  printf '{"run":%d,"established_s":%s,"refused":%d,"admitted_s":%s,"up_s":%s,"ready_s":%s,"at_ready":"%s"}\n' \
    "$run" "$established" "$refused" "${admitted:-null}" "$up" "${ready:-null}" "$at_ready"
  grep -h "admission" "$work/operator-$run.log" | sed 's/^/  operator: /' >&2 || true
  cleanup
done
