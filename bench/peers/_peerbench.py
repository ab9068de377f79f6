"""Shared bits of the peer no-op benchmarks (ray_noop.py, celery_noop.py).

Output contract: exactly one JSON line on stdout,
    {"system":"...","tasks":N,"seconds":S,"tasks_per_sec":R}
and everything else (our logs, the peer's logs, its child processes' output)
on stderr. To make that hold whatever a library prints, `claim_stdout()`
moves the real stdout aside and points file descriptor 1 at stderr, so only
`emit()` can write to the real stdout.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

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
        },
        separators=(",", ":"),
    )
    out.write(line + "\n")
    out.flush()


_stop = {"signum": None, "raise_now": False}


def exit_on_signals(hard_limit=None):
    """SIGTERM/SIGHUP/SIGINT (and SIGALRM after hard_limit seconds, a last
    bound for a call that would hang past its own timeout) make the script
    stop and run its `finally` clean-ups (`timeout` sends SIGTERM).

    The exception is not raised at whatever bytecode the signal lands on,
    which could be half-way through a peer's own call (Ray's submission is
    Cython over C++, Celery's a publish to Redis). It is raised at once
    only inside `blocking()` (waits that the peers make interruptible);
    elsewhere the signal is noted and `check_stop()`, called by our loops,
    raises it."""

    def handler(signum, _frame):
        if signum == signal.SIGALRM:
            log("hard time limit reached; stopping")
        else:
            log(f"got signal {signum}; stopping")
        if _stop["signum"] is None:
            _stop["signum"] = signum
        if _stop["raise_now"] or signum == signal.SIGALRM:
            # (the hard limit is the last resort: it raises wherever we are)
            _stop["raise_now"] = False
            raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGALRM):
        signal.signal(sig, handler)
    if hard_limit:
        signal.alarm(int(hard_limit) + 1)


def check_stop():
    if _stop["signum"] is not None:
        raise SystemExit(128 + _stop["signum"])


class blocking:
    """Context for a blocking wait on the peer: a stop signal raises here."""

    def __enter__(self):
        check_stop()
        _stop["raise_now"] = True

    def __exit__(self, *exc):
        _stop["raise_now"] = False
        return False


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
        check_stop()
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("benchmark deadline passed")
        return max(left, floor)


def run_main(main):
    """Run main() and leave with os._exit: once main's clean-up has stopped
    the servers, no finaliser may run (Celery's AsyncResult.__del__ would
    try to reach the stopped Redis, and retry for a long while)."""
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        sys.stderr.flush()
        os._exit(code)
    except KeyboardInterrupt:
        log("interrupted")
        sys.stderr.flush()
        os._exit(130)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stderr.flush()
    os._exit(0)


def make_tmpdir(prefix):
    """A private temp dir named <prefix>-<our pid>-*. Dirs of earlier runs
    with the same prefix whose pid is gone (a run that was SIGKILLed and
    could not clean up) are removed first, with any process left in that
    run's process group that carries that run's token (file run-token)."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        parts = name.split("-")
        if len(parts) >= 3 and parts[0] == prefix and parts[1].isdigit():
            pid = int(parts[1])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                # that run is gone: end what it left (the supervised child
                # leads a process group whose id is its pid), then its files
                log(f"cleaning up after an earlier run (pid {pid})")
                path = os.path.join(root, name)
                try:
                    with open(os.path.join(path, "run-token")) as f:
                        kill_group_leftovers(pid, f.read().strip())
                except OSError:
                    pass
                shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass
    path = tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-", dir=root)
    with open(os.path.join(path, "run-token"), "w") as f:
        f.write(os.environ.get(RUN_ENV, ""))
    return path


SUPERVISED_ENV = "KPEERS_SUPERVISED"
# A token per run, in the environment of the child and so of every process
# the peer starts: what tells a leftover of that run from anything else.
RUN_ENV = "KPEERS_RUN"


def supervise():
    """Run this very script again as a child in a session of its own and wait
    for it; then SIGKILL whatever is left of that session's process group.

    Returns in the child (which does the work); never returns in the parent.
    Why: a peer leaves helper processes behind if its driver dies abruptly
    (Ray's agents outlive a SIGKILLed driver by a minute or more, eating CPU
    on a 2-core machine). The child is its process group's leader, and Ray
    and Celery's helpers stay in its group unless they leave it, so the
    parent can end them by that group's id.
    - SIGTERM/SIGINT/SIGHUP/SIGALRM to the parent: passed on to the child as
      SIGTERM; the child cleans up; the parent waits, then kills the group.
    - The parent SIGKILLed: the child gets SIGTERM (pdeathsig) and cleans up.
    """
    if os.environ.get(SUPERVISED_ENV) == "1":
        return
    import subprocess

    env = dict(os.environ)
    env[SUPERVISED_ENV] = "1"
    env[RUN_ENV] = os.urandom(8).hex()
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]],
        env=env, start_new_session=True, preexec_fn=set_pdeathsig,
    )
    state = {"kill_at": None}

    def forward(signum, _frame):
        if state["kill_at"] is None:
            state["kill_at"] = time.monotonic() + 60  # the child's time to clean up
            try:
                child.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, forward)

    code = None
    while code is None:
        try:
            code = child.wait(timeout=1)
        except subprocess.TimeoutExpired:
            if state["kill_at"] is not None and time.monotonic() > state["kill_at"]:
                log(f"child {child.pid} still running 60 s after SIGTERM; killing it")
                child.kill()
    try:
        os.killpg(child.pid, signal.SIGKILL)  # leftovers in the child's group
    except (ProcessLookupError, PermissionError):
        pass
    sys.stderr.flush()
    os._exit(code if code >= 0 else 128 - code)


def _environ_has(pid, entry):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return entry.encode() in f.read().split(b"\0")


def kill_group_leftovers(pgid=None, token=None):
    """SIGKILL, by pid, every process of process group `pgid` but us whose
    environment holds this run's token.

    Default: our own group and token, in the supervised child (which leads
    the group): after a peer's own shutdown, for helpers it did not stop.
    With the pgid and token of an earlier run that is gone (see
    make_tmpdir): what that run left."""
    me = os.getpid()
    if pgid is None:
        pgid, token = me, os.environ.get(RUN_ENV)
        if os.getpgrp() != me:
            return
    if not token:
        return
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            # fields after "(comm)": state ppid pgrp ...
            if int(stat[stat.rindex(")") + 2:].split()[2]) != pgid:
                continue
            if not _environ_has(entry, f"{RUN_ENV}={token}"):
                continue
            os.kill(int(entry), signal.SIGKILL)
            log(f"killed leftover pid {entry} (process group {pgid})")
        except (OSError, ValueError, IndexError):
            pass
