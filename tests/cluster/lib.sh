# Shell helpers shared by up.sh and down.sh (sourced, not run).

log() { printf '[kontinuum cluster %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Port reservations live here, one file per port, naming the cluster dir that
# holds it. Choosing a port under a flock and recording it makes concurrent
# up.sh runs pick different ports; a reservation whose cluster dir is gone is
# stale and reused.
PORT_DIR=${TMPDIR:-/tmp}/kontinuum-ports

# reserve_port CLUSTER_DIR: print a free loopback TCP port, reserved for it.
# Ports come from 20000-32767, below Linux's ephemeral range (32768+), so the
# kernel does not hand them to outgoing connections meanwhile.
reserve_port() {
  local owner=$1 port tries=0
  mkdir -p "$PORT_DIR"
  (
    flock 9
    while ((tries++ < 500)); do
      port=$((20000 + RANDOM % 12768))
      if [[ -f $PORT_DIR/$port ]]; then
        [[ -d $(cat "$PORT_DIR/$port" 2>/dev/null) ]] && continue
      fi
      # Any socket on the port (listening or connected) makes it unusable.
      [[ -z $(ss -Htan "( sport = :$port )" 2>/dev/null) ]] || continue
      printf '%s\n' "$owner" >"$PORT_DIR/$port"
      echo "$port"
      exit 0
    done
    exit 1
  ) 9>"$PORT_DIR/.lock" || die "no free port found"
}

# release_ports CLUSTER_DIR: drop the reservations of that cluster.
release_ports() {
  local owner=$1 f
  [[ -d $PORT_DIR ]] || return 0
  for f in "$PORT_DIR"/[0-9]*; do
    [[ -f $f && $(cat "$f" 2>/dev/null) == "$owner" ]] && rm -f "$f"
  done
  return 0
}

# start_daemon CLUSTER_DIR NAME BINARY ARGS...: run in the background with its
# own session (setsid execs in place, so $! is the daemon's pid; a Ctrl-C in
# the caller's terminal does not reach it), stdin closed and output to
# logs/NAME.log, so it never holds the caller's stdout open (`eval "$(up.sh)"`
# would otherwise wait forever). The pid goes to run/NAME.pid for down.sh.
start_daemon() {
  local dir=$1 name=$2; shift 2
  setsid "$@" </dev/null >"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/run/$name.pid"
}

# daemon_alive CLUSTER_DIR NAME
daemon_alive() {
  local pid
  pid=$(cat "$1/run/$2.pid" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null
}

# wait_until WHAT TIMEOUT_S CLUSTER_DIR DAEMON CMD...: retry CMD until it
# succeeds; fail early if DAEMON has exited, or after TIMEOUT_S.
wait_until() {
  local what=$1 timeout=$2 dir=$3 daemon=$4; shift 4
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    daemon_alive "$dir" "$daemon" || die "$daemon exited while waiting for $what (log: $dir/logs/$daemon.log)"
    ((SECONDS - start < timeout)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.3
  done
  log "ready: $what ($((SECONDS - start))s)"
}
