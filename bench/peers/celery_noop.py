#!/usr/bin/env python3
"""No-op task throughput on Celery: the peer of Kontinuum's `std.echo` benchmark.

Redis is both broker and result backend: a private redis-server on a free
loopback port, in its own temp dir, started here and stopped at the end by
its pid. One Celery worker, started as a subprocess, prefork pool with
concurrency 2. N tasks (a task returning its argument) are sent, then all
results collected. Start-up and a warm-up batch are not timed. Prints one
JSON line on stdout:
    {"system":"celery","tasks":N,"seconds":S,"tasks_per_sec":R}

Usage: celery_noop.py [N] [--warmup W] [--timeout SECONDS]

This file is also the worker's app module (`celery -A celery_noop worker`):
at import it only defines the app and the task; the broker's address comes
from the environment variable KPEERS_REDIS_URL.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _peerbench import (  # noqa: E402
    Deadline, claim_stdout, emit, exit_on_signals, log, make_tmpdir, parse_args,
    blocking, run_main, set_pdeathsig, supervise,
)

from celery import Celery  # noqa: E402

URL_ENV = "KPEERS_REDIS_URL"

app = Celery("kpeers_noop")


def configure(url):
    app.conf.update(
        broker_url=f"{url}/0",
        result_backend=f"{url}/1",
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )


if os.environ.get(URL_ENV):
    configure(os.environ[URL_ENV])


@app.task(name="kpeers.echo")
def echo(x):
    return x


# ---------------------------------------------------------------- driver --

def free_loopback_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(tmp, deadline, attempts=5):
    """Start redis-server on a free 127.0.0.1 port; return (proc, port)."""
    import redis

    for attempt in range(attempts):
        port = free_loopback_port()
        logfile = os.path.join(tmp, f"redis-{port}.log")
        proc = subprocess.Popen(
            ["redis-server",
             "--bind", "127.0.0.1", "--port", str(port),
             "--dir", tmp, "--logfile", logfile,
             "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--protected-mode", "yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=2,
            start_new_session=True, preexec_fn=set_pdeathsig,
        )
        client = redis.Redis(host="127.0.0.1", port=port,
                             socket_connect_timeout=1, socket_timeout=1)
        t_end = min(time.monotonic() + 10, deadline.end)
        while time.monotonic() < t_end and proc.poll() is None:
            try:
                if client.ping():
                    client.close()
                    return proc, port
            except redis.exceptions.ConnectionError:
                pass
            time.sleep(0.05)
        client.close()
        stop(proc, "redis-server", grace=2)
        try:
            with open(logfile) as f:
                tail = f.read()[-400:]
        except OSError:
            tail = ""
        log(f"redis-server on port {port} did not come up (try {attempt + 1}): {tail}")
    raise RuntimeError("could not start redis-server")


def start_worker(url):
    env = dict(os.environ)
    env[URL_ENV] = url
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_noop", "worker",
         "--pool", "prefork", "--concurrency", "2",
         "--loglevel", "WARNING",
         "--hostname", f"kpeers-{os.getpid()}@localhost",
         # one worker, no cluster: skip the start-up sync and the event chatter
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=HERE, env=env,
        stdin=subprocess.DEVNULL, stdout=2, stderr=2,
        # If we die, the worker is killed outright (no warm shutdown against
        # a Redis that is gone too); its pool children die with it (Celery
        # sets their pdeathsig to SIGKILL).
        start_new_session=True, preexec_fn=lambda: set_pdeathsig(signal.SIGKILL),
    )


def stop(proc, name, grace=10.0, group=False):
    """Stop one process we started: SIGTERM to it (a Celery worker then
    shuts its pool down itself), SIGKILL after `grace` seconds; with group,
    SIGKILL also whatever is left of the process group it leads (its pool
    children)."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log(f"{name} (pid {proc.pid}) still running {grace:g}s after SIGTERM; killing it")
        except ProcessLookupError:
            pass
    if group:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def watcher(worker, deadline):
    """A check that raises when the worker has exited or the deadline (or a
    stop signal) has come."""

    def watch():
        if worker.poll() is not None:
            raise RuntimeError(f"celery worker exited with {worker.returncode}")
        deadline.left()

    return watch


def submit(task, n, watch, start=0):
    """task.delay(i) for i in start..start+n-1; `watch()` between sends
    (every 100), never inside one."""
    results = []
    for i in range(start, start + n):
        results.append(task.delay(i))
        if i % 100 == 99:
            watch()
    return results


def collect(results, watch, deadline):
    """All results of `results`, in order. One ResultSet.get (with the Redis
    backend: pub/sub, no polling); `watch()` between drained batches, and at
    least once a second."""
    from celery.result import ResultSet

    watch()
    with blocking():
        return ResultSet(results).get(timeout=deadline.left(), on_interval=watch)


def main():
    supervise()
    args = parse_args("Celery", default_timeout=600)
    out = claim_stdout()
    exit_on_signals(hard_limit=args.timeout + 60)
    deadline = Deadline(args.timeout)

    import celery
    import kombu
    import redis as redis_py

    tmp = make_tmpdir("kcelery")
    redis_proc = worker = None
    try:
        t0 = time.monotonic()
        redis_proc, port = start_redis(tmp, deadline)
        url = f"redis://127.0.0.1:{port}"
        configure(url)
        ver = subprocess.run(["redis-server", "--version"], capture_output=True,
                             text=True).stdout.split()
        log(f"redis-server {ver[2] if len(ver) > 2 else '?'} pid {redis_proc.pid} "
            f"on 127.0.0.1:{port}")

        worker = start_worker(url)
        watch = watcher(worker, deadline)
        log(f"celery {celery.__version__} (kombu {kombu.__version__}, "
            f"redis-py {redis_py.__version__}) worker pid {worker.pid}, "
            "prefork, concurrency 2")

        # The first task's round trip tells that the worker is up.
        got = collect(submit(echo, 1, watch, start=-1), watch, deadline)
        assert got == [-1], got
        log(f"worker answering {time.monotonic() - t0:.1f}s after start")

        if args.warmup:
            t0 = time.monotonic()
            got = collect(submit(echo, args.warmup, watch), watch, deadline)
            assert got == list(range(args.warmup)), "warm-up results are wrong"
            log(f"warm-up: {args.warmup} tasks in {time.monotonic() - t0:.2f}s")

        n = args.tasks
        t0 = time.perf_counter()
        results = submit(echo, n, watch)
        t_sub = time.perf_counter()
        got = collect(results, watch, deadline)
        t1 = time.perf_counter()

        if got != list(range(n)):
            raise RuntimeError("celery returned wrong results")
        log(f"celery: {n} tasks, submit {t_sub - t0:.3f}s, all done {t1 - t0:.3f}s")
        emit(out, "celery", n, t1 - t0)
    finally:
        try:
            app.close()
        except Exception:
            pass
        stop(worker, "celery worker", grace=5, group=True)
        stop(redis_proc, "redis-server", grace=5)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_main(main)
