#!/usr/bin/env python3
"""No-op task throughput on Ray: the peer of Kontinuum's `std.echo` benchmark.

A local Ray instance with num_cpus=2; a remote function that returns its
argument; N tasks submitted, then all awaited with one ray.get. Ray's
start-up and a warm-up batch are not timed. Prints one JSON line on stdout:
    {"system":"ray","tasks":N,"seconds":S,"tasks_per_sec":R}

Usage: ray_noop.py [N] [--warmup W] [--timeout SECONDS]
"""

import os
import shutil
import sys
import time

# Before `import ray`: no usage-stats report, and the node's address is the
# loopback one (not the address of the default route). Nothing leaves 127/8.
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _peerbench import (  # noqa: E402
    Deadline, claim_stdout, emit, exit_on_signals, log, make_tmpdir, parse_args,
    blocking, check_stop, kill_group_leftovers, run_main, supervise,
)


def submit(fn, n, deadline):
    """fn.remote(i) for i in 0..n-1; stops (raises) on a signal or the
    deadline, checked between submissions, never inside one."""
    refs = []
    for i in range(n):
        refs.append(fn.remote(i))
        if i % 100 == 99:
            deadline.left()
    return refs


def main():
    supervise()
    args = parse_args("Ray", default_timeout=600)
    out = claim_stdout()
    exit_on_signals(hard_limit=args.timeout + 60)
    deadline = Deadline(args.timeout)

    import ray

    # A short private temp dir: Ray's socket paths must fit in 107 bytes.
    tmp = make_tmpdir("kray")
    try:
        t0 = time.monotonic()
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=256 * 1024 * 1024,
            _node_ip_address="127.0.0.1",
            _temp_dir=tmp,
        )
        # ray.init installs its own SIGTERM handler (it aborts the process);
        # put ours back so that SIGTERM means: clean up, then exit.
        exit_on_signals()
        check_stop()
        log(f"ray {ray.__version__} up in {time.monotonic() - t0:.1f}s "
            f"(resources {ray.cluster_resources()})")

        @ray.remote
        def echo(x):
            return x

        if args.warmup:
            t0 = time.monotonic()
            refs = submit(echo, args.warmup, deadline)
            with blocking():
                got = ray.get(refs, timeout=deadline.left())
            assert got == list(range(args.warmup)), "warm-up results are wrong"
            log(f"warm-up: {args.warmup} tasks in {time.monotonic() - t0:.2f}s")

        n = args.tasks
        t0 = time.perf_counter()
        refs = submit(echo, n, deadline)
        t_sub = time.perf_counter()
        with blocking():
            got = ray.get(refs, timeout=deadline.left())
        t1 = time.perf_counter()

        if got != list(range(n)):
            raise RuntimeError("ray returned wrong results")
        log(f"ray: {n} tasks, submit {t_sub - t0:.3f}s, all done {t1 - t0:.3f}s")
        emit(out, "ray", n, t1 - t0)
    finally:
        try:
            log("ray.shutdown()")
            ray.shutdown()
            log("ray is down")
        finally:
            kill_group_leftovers()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_main(main)
