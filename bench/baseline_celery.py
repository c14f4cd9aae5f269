"""Plain Celery on Redis (bench/celery_noop_app.py): enqueue, drain and latency.

Adapted from the baseline drivers: every measurement starts from an empty Redis (the
caller flushes it), `flush()` re-declares the queue's binding that FLUSHALL removes.
BENCH_REDIS_URL must be set before this module is imported.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis
from celery import group

from bench import common
from bench.celery_noop_app import QUEUE, REDIS_URL, app

APP_MODULE = "bench.celery_noop_app"


def worker_env() -> dict[str, str]:
    """The environment of a plain worker: no Django (its fixup would run per task)."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["BENCH_REDIS_URL"] = REDIS_URL
    return env


def client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


def flush(r: redis.Redis) -> None:
    """Empty Redis, then bind the queue again (a publish to its exchange needs the binding)."""
    r.flushall()
    with app.connection_for_write() as conn:
        app.amqp.queues[QUEUE].bind(conn.default_channel).declare()


def _check_count(r: redis.Redis, n: int) -> None:
    waiting, _ = common.broker_backlog(r, QUEUE)
    if waiting != n:
        raise RuntimeError(f"celery: expected {n} messages in {QUEUE!r}, found {waiting}")


def warm_up(r: redis.Redis) -> None:
    """Connect, declare, fill the producer pool; then start from empty."""
    app.tasks["bench.noop"].apply_async()
    flush(r)


def single_enqueue(r: redis.Redis, n: int) -> float:
    """N sequential `apply_async()`; jobs/s."""
    warm_up(r)
    task = app.tasks["bench.noop"]
    start = time.perf_counter()
    for _ in range(n):
        task.apply_async()
    rate = n / (time.perf_counter() - start)
    _check_count(r, n)
    return rate


def enqueue_group(n: int, chunk: int = 1000, batched: bool = False) -> None:
    """`group(...).apply_async()` in chunks; optionally inside kombu's `Producer.batch()`."""
    sig = app.tasks["bench.noop"].s()
    with app.producer_or_acquire() as producer:
        for i in range(0, n, chunk):
            g = group([sig.clone() for _ in range(min(chunk, n - i))])
            if batched:
                with producer.batch(chunk):
                    g.apply_async(producer=producer)
            else:
                g.apply_async(producer=producer)


def group_enqueue(r: redis.Redis, n: int, batched: bool = False) -> float:
    """Group enqueue in chunks of 1000; jobs/s (building the signatures included)."""
    warm_up(r)
    start = time.perf_counter()
    enqueue_group(n, batched=batched)
    rate = n / (time.perf_counter() - start)
    _check_count(r, n)
    return rate


def prefill(r: redis.Redis, n: int) -> dict[str, float]:
    """N waiting messages, the fastest way (batched groups); memory they take in Redis."""
    warm_up(r)
    before = common.used_memory(r)
    enqueue_group(n, batched=True)
    _check_count(r, n)
    return {"bytes_per_waiting_job": (common.used_memory(r) - before) / n}


#: Above this many, many_waiting clones the messages Celery sent (see there).
SENT_FOR_REAL = 100_000


def many_waiting(r: redis.Redis, n: int) -> dict[str, Any]:
    """N waiting messages, no worker: memory per message. Up to SENT_FOR_REAL are sent with
    batched groups (as `prefill`); past that (1,000,000 takes an hour on a loaded 2-core VM)
    the rest are copies of those messages with fresh task ids (same length, same list),
    LPUSHed in pipelines: the memory a message takes depends on its bytes alone."""
    warm_up(r)
    before = common.used_memory(r)
    start = time.perf_counter()
    real = min(n, SENT_FOR_REAL)
    enqueue_group(real, batched=True)
    lists = [key for key in common.queue_keys(QUEUE) if r.llen(key)]
    samples = r.lrange(lists[0], 0, 999)
    for i in range(real, n, 1000):
        pipe = r.pipeline(transaction=False)
        for raw in samples[: min(1000, n - i)]:
            task_id = json.loads(raw)["headers"]["id"]
            pipe.lpush(lists[0], raw.replace(task_id.encode(), str(uuid.uuid4()).encode()))
        pipe.execute()
    fill_s = time.perf_counter() - start
    after = common.used_memory(r)
    _check_count(r, n)
    return {
        "n": n,
        "sent_by_celery": real,
        "sample_message_bytes": len(samples[0]),
        "fill_jobs_per_s": n / fill_s,
        "bytes_per_waiting_job": (after - before) / n,
        "used_memory_delta_bytes": after - before,
    }


def probe(r: redis.Redis) -> Callable[[], tuple[int, bool]]:
    """A poll for wait_drained: drained = the queue's lists AND `unacked` empty."""

    def poll() -> tuple[int, bool]:
        waiting, unacked = common.broker_backlog(r, QUEUE)
        return waiting, waiting == 0 and unacked == 0

    return poll


def drain(
    r: redis.Redis, n: int, worker_args: Sequence[str], workers: int = 1, timeout: float = 600
) -> dict[str, float]:
    """Pre-fill N, start workers, time first fetch -> lists AND `unacked` empty."""
    memory = prefill(r, n)
    spawned = time.perf_counter()
    procs = common.start_workers(APP_MODULE, QUEUE, worker_args, worker_env(), workers, tag="cel")

    try:
        figures = common.wait_drained(probe(r), n, procs, spawned, timeout, r)
    finally:
        common.stop_workers(procs)
    return {**figures, **memory}


def latency(
    r: redis.Redis,
    n: int,
    spacing_s: float,
    worker_args: Sequence[str] = common.PREFORK_2,
    timeout: float = 120,
) -> dict[str, float]:
    """One idle worker; `stamp(list_key, time.time())` one at a time; ms percentiles."""
    flush(r)
    task = app.tasks["bench.stamp"]
    key, warm = "bench:latency", "bench:latency-warm"
    procs = common.start_workers(APP_MODULE, QUEUE, worker_args, worker_env(), tag="cel")
    try:
        task.apply_async((warm, time.time()))
        if r.blpop([warm], timeout=60) is None:
            raise RuntimeError("celery worker did not start")
        time.sleep(0.5)  # let the worker go idle (blocked in BRPOP)
        for _ in range(n):
            task.apply_async((key, time.time()))
            time.sleep(spacing_s)
        deadline = time.monotonic() + timeout
        while r.llen(key) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery: only {r.llen(key)}/{n} latency samples")
            time.sleep(0.01)
    finally:
        common.stop_workers(procs)
    return common.percentiles([float(v) for v in r.lrange(key, 0, -1)])
