#!/usr/bin/env bash
# A Prometheus for tests, on a free loopback port (built on first use, pinned
# in versions.env, cached like the control plane).
#
#   url=$(tests/cluster/prometheus.sh start DIR CONFIG)   # prints http://127.0.0.1:PORT
#   tests/cluster/prometheus.sh stop DIR
#
# DIR is the caller's (made if missing); Prometheus keeps its data, log
# (DIR/logs/prometheus.log) and pid there. CONFIG is a prometheus.yml with the
# scrape jobs. Only the HTTP API is served (no web UI assets are built in).
# stop signals only the recorded pid, and only if its command line names DIR.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=lib.sh
source "$here/lib.sh"

CACHE=${KONTINUUM_CACHE:-$HOME/.cache/kontinuum}
cmd=${1:-}
dir=${2:-}
[[ -n $dir ]] || die "usage: prometheus.sh start DIR CONFIG | stop DIR"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case $cmd in
  start)
    config=${3:-}
    [[ -f $config ]] || die "usage: prometheus.sh start DIR CONFIG (CONFIG: a prometheus.yml; got '$config')"
    "$here/build.sh" prometheus
    bin=$CACHE/prometheus/$PROMETHEUS_VERSION/bin/prometheus
    "$bin" --version >/dev/null 2>&1 || die "$bin does not run"
    # promtool is not built; Prometheus checks the config itself at start.
    mkdir -p "$dir/logs" "$dir/run" "$dir/data"
    if daemon_alive "$dir" prometheus; then
      die "a Prometheus already runs for $dir (pid $(cat "$dir/run/prometheus.pid")); stop it first"
    fi
    port=$(reserve_port "$dir")
    start_daemon "$dir" prometheus "$bin" \
      --config.file="$config" \
      --storage.tsdb.path="$dir/data" \
      --storage.tsdb.retention.time=1d \
      --web.listen-address="127.0.0.1:$port" \
      --log.level=warn
    echo "$port" >"$dir/run/prometheus.port"
    if ! (wait_until "Prometheus /-/ready" 60 "$dir" prometheus \
      curl -fsS "http://127.0.0.1:$port/-/ready"); then
      tail -n 20 "$dir/logs/prometheus.log" >&2
      "$0" stop "$dir" || true
      exit 1
    fi
    echo "http://127.0.0.1:$port"
    ;;
  stop)
    pidfile=$dir/run/prometheus.pid
    if [[ -f $pidfile ]]; then
      pid=$(cat "$pidfile")
      if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$dir/data"; then
        kill -TERM "$pid"
        for ((i = 0; i < 100; i++)); do
          kill -0 "$pid" 2>/dev/null || break
          sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      fi
      rm -f "$pidfile"
    fi
    release_ports "$dir"
    ;;
  *) die "usage: prometheus.sh start DIR CONFIG | stop DIR" ;;
esac
