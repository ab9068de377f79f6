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

# stop NAME: SIGTERM, wait up to 20 s for a clean exit, then SIGKILL.
stop() {
  local name=$1 pidfile=$dir/run/$1.pid pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    return 0
  fi
  if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir"; then
    log "pid $pid ($name) is no longer ours; leaving it alone"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# Clients first, etcd last, so nothing logs storage errors on the way down.
for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  stop "$name"
done
release_ports "$dir"
rm -rf "$dir"
log "stopped and removed $dir"
