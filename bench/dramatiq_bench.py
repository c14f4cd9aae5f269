"""Dramatiq on Redis (bench/dramatiq_app.py): the no-op drain, beside Celery's and Jobyard's.

BENCH_REDIS_URL must be set before this module is imported. Needs the bench extra
(`pip install -e ".[bench]"`); bench/run.py skips Dramatiq when it is not installed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from bench import common
from bench.dramatiq_app import QUEUE, broker, noop

DRAMATIQ = str(Path(sys.executable).parent / "dramatiq")


def worker_env() -> dict[str, str]:
    """No Django: Dramatiq's worker imports only bench.dramatiq_app."""
    return {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}


def prefill(r: redis.Redis, n: int) -> dict[str, float]:
    """N messages sent as a Dramatiq user sends them (`actor.send()`, a round trip each)."""
    r.flushall()
    before = common.used_memory(r)
    for _ in range(n):
        noop.send()
    broker.close()  # its connections are of no use to the worker processes
    if r.llen(f"dramatiq:{QUEUE}") != n:
        raise RuntimeError(f"dramatiq: expected {n} waiting messages")
    return {"bytes_per_waiting_job": (common.used_memory(r) - before) / n}


def drain(r: redis.Redis, n: int, processes: int, threads: int,
          timeout: float = 600) -> dict[str, float]:  # fmt: skip
    """Pre-fill N, start `dramatiq -p P -t T`; drained = the queue's list AND its message
    hash empty (Dramatiq deletes a message from the hash when it is acked)."""
    memory = prefill(r, n)
    spawned = time.perf_counter()
    procs = [subprocess.Popen(
        [DRAMATIQ, "bench.dramatiq_app", "-p", str(processes), "-t", str(threads), "-Q", QUEUE],
        cwd=common.ROOT, env=worker_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )]  # fmt: skip

    def poll() -> tuple[int, bool]:
        pipe = r.pipeline(transaction=False)
        pipe.llen(f"dramatiq:{QUEUE}")
        pipe.hlen(f"dramatiq:{QUEUE}.msgs")
        waiting, unacked = pipe.execute()
        return waiting, waiting == 0 and unacked == 0

    try:
        figures = common.wait_drained(poll, n, procs, spawned, timeout, r)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return {**figures, **memory}
