#!/usr/bin/env bash
# Idempotent set-up for the peer benchmarks (Ray, Celery+Redis).
#
#   bench/peers/setup.sh        -> prints the venv's python path on stdout
#
# - Debian's redis-server, installed with apt-get only when it is missing
#   (the package's own service is not used: celery_noop.py starts a private
#   redis-server on a free loopback port).
# - A venv under ~/.cache/kontinuum/peers-venv-<hash of requirements.txt>,
#   created only when missing (or left half-built by an interrupted run).
#
# Everything but the final path goes to stderr.
# Env: PYTHON (default python3), KONTINUUM_CACHE (default ~/.cache/kontinuum).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
log() { echo "peers/setup: $*" >&2; }

# --- redis-server (Debian) ---------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      log "redis-server is missing and we are not root: apt-get install redis-server"; exit 1
    fi
  fi
  log "installing redis-server with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -q redis-server >&2; then
    log "apt-get install failed; running apt-get update and retrying"
    $sudo apt-get update -q >&2
    $sudo apt-get install -y -q redis-server >&2
  fi
fi
command -v redis-server >/dev/null 2>&1 || { log "redis-server still not found"; exit 1; }

# --- venv --------------------------------------------------------------------
py="${PYTHON:-python3}"
command -v "$py" >/dev/null 2>&1 || { log "no $py"; exit 1; }
pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$pyver" = "3.11" ] || log "warning: requirements.txt was pinned on Python 3.11, this is $pyver"

hash="$(sha256sum "$req" | cut -c1-16)"
cache="${KONTINUUM_CACHE:-$HOME/.cache/kontinuum}"
venv="$cache/peers-venv-$hash"
mkdir -p "$cache"

# One set-up at a time per venv (two benchmark runs may start together).
exec 9>"$venv.lock"
flock -w 900 9 || { log "timed out waiting for $venv.lock"; exit 1; }

ok_marker="$venv/.kontinuum-complete"
if [ -f "$ok_marker" ] && "$venv/bin/python" -c 'import ray, celery, redis' >/dev/null 2>&1; then
  log "venv present: $venv"
else
  if [ -e "$venv" ]; then
    log "removing incomplete venv $venv"
    rm -rf -- "$venv"
  fi
  log "creating venv $venv ($("$py" --version 2>&1))"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" >&2
  "$venv/bin/python" -m pip check >&2
  "$venv/bin/python" -c 'import ray, celery, redis' >&2
  cp -- "$req" "$ok_marker"
  log "venv ready"
fi

echo "$venv/bin/python"
