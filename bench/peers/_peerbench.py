"""Shared bits of the peer no-op benchmarks (ray_noop.py, celery_noop.py).

Output contract: exactly one JSON line on stdout,
    {"system": "...", "tasks": N, "seconds": S, "tasks_per_sec": R}
and everything else (our logs, the peer's logs, its child processes' output)
on stderr. To make that hold whatever a library prints, `claim_stdout()`
moves the real stdout aside and points file descriptor 1 at stderr, so only
`emit()` can write to the real stdout.
"""

import argparse
import json
import os
import signal
import sys
import time

MAX_TASKS = 1_000_000  # a bound on count, whatever the caller asks


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def claim_stdout():
    """Return a file for the real stdout; from now on fd 1 is stderr."""
    sys.stdout.flush()
    real = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return real


def emit(out, system, tasks, seconds):
    line = json.dumps(
        {
            "system": system,
            "tasks": tasks,
            "seconds": round(seconds, 6),
            "tasks_per_sec": round(tasks / seconds, 1),
        }
    )
    out.write(line + "\n")
    out.flush()


def exit_on_signals(hard_limit=None):
    """Turn SIGTERM/SIGHUP into SystemExit so `finally` clean-ups run
    (`timeout` sends SIGTERM; Ctrl-C already raises KeyboardInterrupt).
    With hard_limit, SIGALRM does the same after that many seconds, a last
    bound for a call that would otherwise hang past its own timeout."""

    def handler(signum, _frame):
        if signum == signal.SIGALRM:
            log("hard time limit reached; cleaning up")
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, handler)
    if hard_limit:
        signal.alarm(int(hard_limit) + 1)


def set_pdeathsig(sig=signal.SIGTERM):
    """For subprocess' preexec_fn: the child gets `sig` when we die, even by
    SIGKILL, so no server or worker outlives the benchmark (Linux only)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except Exception:  # not Linux: the finally clean-up still applies
        pass


def parse_args(system, default_timeout):
    p = argparse.ArgumentParser(description=f"No-op task throughput on {system}.")
    p.add_argument("tasks", nargs="?", type=int, default=10_000,
                   help="number of no-op tasks to time (default 10000)")
    p.add_argument("--warmup", type=int, default=200,
                   help="no-op tasks run before timing, not counted (default 200)")
    p.add_argument("--timeout", type=float, default=default_timeout,
                   help="seconds allowed for start-up, warm-up and the timed run "
                        f"together (default {default_timeout:g})")
    a = p.parse_args()
    if not 1 <= a.tasks <= MAX_TASKS:
        p.error(f"tasks must be in 1..{MAX_TASKS}")
    if not 0 <= a.warmup <= MAX_TASKS:
        p.error(f"warmup must be in 0..{MAX_TASKS}")
    if a.timeout <= 0:
        p.error("timeout must be positive")
    return a


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self, floor=0.1):
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("benchmark deadline passed")
        return max(left, floor)
