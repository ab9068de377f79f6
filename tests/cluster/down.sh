#!/usr/bin/env bash
# Stop a cluster started by up.sh and remove its directory.
#
#   tests/cluster/down.sh [CLUSTER_DIR]      (default: $KONTINUUM_CLUSTER_DIR)
#
# Only the processes whose pids up.sh recorded in CLUSTER_DIR/run/*.pid are
# signalled, and only if their command line still names CLUSTER_DIR (so a
# recycled pid is never hit). Nothing is killed by name.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

dir=${1:-${KONTINUUM_CLUSTER_DIR:-}}
[[ -n $dir ]] || die "usage: down.sh CLUSTER_DIR (or set KONTINUUM_CLUSTER_DIR)"
dir=${dir%/}
if [[ ! -d $dir ]]; then
  log "$dir does not exist: nothing to stop"
  exit 0
fi
# Refuse to rm -rf anything that up.sh did not make.
[[ -d $dir/run && -d $dir/logs && $(basename "$dir") == kontinuum-cluster.* ]] \
  || die "$dir is not a cluster directory made by up.sh"

# ours NAME: print the recorded pid if that process is still running and its
# command line names this cluster dir.
ours() {
  local pidfile=$dir/run/$1.pid pid
  [[ -f $pidfile ]] || return 1
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 1
  if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir"; then
    log "pid $pid ($1) is no longer ours; leaving it alone"
    return 1
  fi
  echo "$pid"
}

# stop_daemons NAME...: SIGTERM to all at once (the state is thrown away, so
# the order does not matter and stopping in parallel takes ~3 s instead of
# ~11 s), wait up to 20 s for them to exit, then SIGKILL whatever is left.
stop_daemons() {
  local pids=() name pid i alive
  for name in "$@"; do
    if pid=$(ours "$name"); then
      pids+=("$pid")
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  ((${#pids[@]})) || return 0
  for ((i = 0; i < 100; i++)); do
    alive=()
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive+=("$pid")
    done
    ((${#alive[@]})) || break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

# The real node goes first, while the API server still runs: its pods are
# deleted through kubelet so CNI and the runtime tear them down (node.sh).
if [[ -d $dir/node ]]; then
  # shellcheck source=node.sh
  source "$here/node.sh"
  node_down
fi
stop_daemons kwok provisioner s3 kube-scheduler kube-controller-manager kube-apiserver
# etcd last: an API server that advertises a real address (the real node's)
# removes it from the `kubernetes` endpoints as it stops, which needs etcd.
stop_daemons etcd
release_ports "$dir"
if [[ -n ${NODE_LEFT_STATE:-} ]]; then
  # Keep the dir: its node/ holds the before/after snapshots and the logs.
  release_ports "$dir"
  die "the real node left state on this host (diff above; $dir/node/host-state.diff); $dir is kept for inspection"
fi
# --one-file-system: never follow a mount that survived into another filesystem.
rm -rf --one-file-system "$dir"
log "stopped and removed $dir"
