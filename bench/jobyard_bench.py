"""Jobyard: enqueue, drain, latency and a million waiting jobs, through the public API.

Django must be set up (DJANGO_SETTINGS_MODULE=bench.settings) before this is imported.

Counting completions. The default retention keeps only the newest 100 completed jobs per
queue, so `Queue.counts()["completed"]` stops at 100. The bench keeps that default (the
`complete` script's trim is part of what a job costs in production) and counts completions
from the per-minute statistics hashes instead (`<prefix><queue>:stats:<minute>`, field
`completed`), which the same `complete` script increments atomically with the state change:
their sum over the minutes of the run is exactly the number of jobs completed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import redis
from django.conf import settings

import tasks
from bench import common
from tasks import keys
from tasks.connection import get_redis

QUEUE = "default"
NOOP, STAMP = "bench-noop", "bench-stamp"
#: bench/tasks.py: a plain @shared_task, tracked by the registry as it is sent.
PLAIN = "bench.plain_noop"
APP_MODULE = "project"


def worker_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "REDIS_URL": settings.REDIS_URL,
        # The project's structlog setup ignores celery's -l (it does not hijack the root
        # logger): LOG_LEVEL is its equivalent of `-l warning`.
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        **extra,
    }


def client() -> redis.Redis:
    return get_redis()


def flush(r: redis.Redis) -> None:
    r.flushall()


def warm_up(r: redis.Redis) -> None:
    """Load the scripts (a flush keeps them) and connect; then start from empty."""
    tasks.enqueue(NOOP)
    flush(r)


def _check_waiting(r: redis.Redis, n: int) -> None:
    counts = tasks.Queue(QUEUE).counts()
    in_lists, _ = common.broker_backlog(r, QUEUE)
    if counts["waiting"] != n or in_lists != n:
        raise RuntimeError(f"jobyard: expected {n} waiting, found {counts} / {in_lists} messages")


def single_enqueue(r: redis.Redis, n: int) -> float:
    """N sequential `tasks.enqueue("bench-noop")`; jobs/s."""
    warm_up(r)
    start = time.perf_counter()
    for _ in range(n):
        tasks.enqueue(NOOP)
    rate = n / (time.perf_counter() - start)
    _check_waiting(r, n)
    return rate


def enqueue_many(n: int, chunk: int = 1000) -> None:
    for i in range(0, n, chunk):
        tasks.enqueue_bulk([(NOOP, {}) for _ in range(min(chunk, n - i))])


def bulk_enqueue(r: redis.Redis, n: int, chunk: int = 1000) -> float:
    """`tasks.enqueue_bulk` with `chunk` items per call; jobs/s (building the items included)."""
    warm_up(r)
    start = time.perf_counter()
    enqueue_many(n, chunk)
    rate = n / (time.perf_counter() - start)
    _check_waiting(r, n)
    return rate


def prefill(r: redis.Redis, n: int) -> dict[str, float]:
    warm_up(r)
    before = common.used_memory(r)
    enqueue_many(n)
    _check_waiting(r, n)
    return {"bytes_per_waiting_job": (common.used_memory(r) - before) / n}


def probe(r: redis.Redis, n: int, first_minute: int) -> Callable[[], tuple[int, bool]]:
    """A poll for wait_drained: drained = N completions counted in the per-minute stats
    since `first_minute`, AND the queue's broker lists AND kombu's `unacked` empty."""

    def poll() -> tuple[int, bool]:
        pipe = r.pipeline(transaction=False)
        common.broker_backlog_cmds(pipe, QUEUE)
        for minute in range(first_minute, int(time.time() // 60) + 2):
            pipe.hget(keys.stats(QUEUE, minute), "completed")
        replies = pipe.execute()
        k = len(common.queue_keys(QUEUE))
        waiting, unacked = sum(replies[:k]), replies[k]
        completed = sum(int(c or 0) for c in replies[k + 1 :])
        return waiting, completed >= n and waiting == 0 and unacked == 0

    return poll


def drain(
    r: redis.Redis,
    n: int,
    worker_args: Sequence[str],
    workers: int = 1,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Pre-fill N, start workers; drained = N completions AND lists AND `unacked` empty."""
    memory = prefill(r, n)
    first_minute = int(time.time() // 60)
    spawned = time.perf_counter()
    procs = common.start_workers(
        APP_MODULE, QUEUE, worker_args, worker_env(**(env or {})), workers, tag="jy"
    )

    try:
        figures = common.wait_drained(probe(r, n, first_minute), n, procs, spawned, timeout, r)
    finally:
        common.stop_workers(procs)
    counts = tasks.Queue(QUEUE).counts()
    if counts["waiting"] or counts["active"] or counts["failed"]:
        raise RuntimeError(f"jobyard: drained with {counts}")
    return {**figures, **memory}


def plain_prefill(r: redis.Redis, n: int, chunk: int = 1000) -> dict[str, float]:
    """N plain Celery tasks sent as a Celery user sends them (groups of `chunk`), each a
    registry job as it is sent; memory they take in Redis."""
    from celery import current_app, group

    warm_up(r)
    before = common.used_memory(r)
    sig = current_app.tasks[PLAIN].s()
    for i in range(0, n, chunk):
        group([sig.clone() for _ in range(min(chunk, n - i))]).apply_async()
    _check_waiting(r, n)
    return {"bytes_per_waiting_job": (common.used_memory(r) - before) / n}


def plain_many_waiting(r: redis.Redis, n: int) -> dict[str, float]:
    """N tracked plain Celery tasks waiting (sent as `plain_prefill` sends them): memory."""
    start = time.perf_counter()
    memory = plain_prefill(r, n)
    job_id = r.zrange(keys.state(QUEUE, "waiting"), 0, 0)[0].decode()
    events = r.memory_usage(keys.events(QUEUE)) or 0  # capped: per job only at small N
    return {
        "n": n,
        "fill_jobs_per_s": n / (time.perf_counter() - start),
        "sample_job_hash_bytes": r.memory_usage(keys.job(QUEUE, job_id)),
        "sample_job_hash_encoding": r.object("encoding", keys.job(QUEUE, job_id)).decode(),
        "events_stream_bytes": events,
        "bytes_per_waiting_job_without_events": memory["bytes_per_waiting_job"] - events / n,
        **memory,
    }


def plain_drain(
    r: redis.Redis, n: int, worker_args: Sequence[str], workers: int = 1, timeout: float = 600
) -> dict[str, float]:
    """The drain of N tracked plain Celery tasks (bench/tasks.py): drained = N completions
    in the registry's statistics AND lists AND `unacked` empty."""
    memory = plain_prefill(r, n)
    first_minute = int(time.time() // 60)
    spawned = time.perf_counter()
    procs = common.start_workers(APP_MODULE, QUEUE, worker_args, worker_env(), workers, tag="jyp")
    try:
        figures = common.wait_drained(probe(r, n, first_minute), n, procs, spawned, timeout, r)
    finally:
        common.stop_workers(procs)
    counts = tasks.Queue(QUEUE).counts()
    if counts["waiting"] or counts["active"] or counts["failed"]:
        raise RuntimeError(f"jobyard plain tasks: drained with {counts}")
    return {**figures, **memory}


def latency(
    r: redis.Redis,
    n: int,
    spacing_s: float,
    worker_args: Sequence[str] = common.PREFORK_2,
    timeout: float = 120,
) -> dict[str, float]:
    """One idle worker; `enqueue("bench-stamp", sent_at=time.time())` one at a time."""
    warm_up(r)
    key, warm = "bench:latency", "bench:latency-warm"
    procs = common.start_workers(APP_MODULE, QUEUE, worker_args, worker_env(), tag="jy")
    try:
        tasks.enqueue(STAMP, {"sent_at": time.time(), "list_key": warm})
        if r.blpop([warm], timeout=90) is None:
            raise RuntimeError("jobyard worker did not start")
        time.sleep(0.5)
        for _ in range(n):
            tasks.enqueue(STAMP, {"sent_at": time.time(), "list_key": key})
            time.sleep(spacing_s)
        deadline = time.monotonic() + timeout
        while r.llen(key) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobyard: only {r.llen(key)}/{n} latency samples")
            time.sleep(0.01)
        # While a worker is registered and the timing samples are filled: what metrics()
        # costs in a live system (the many-waiting step has no worker and no samples).
        time.sleep(0.2)
        live = {
            "workers": len(tasks.get_workers()),
            "metrics": common.time_calls(tasks.Queue(QUEUE).metrics, 200),
        }
    finally:
        common.stop_workers(procs)
    figures = common.percentiles([float(v) for v in r.lrange(key, 0, -1)])
    return {**figures, "metrics_with_live_worker": live}


def many_waiting(r: redis.Redis, n: int, calls: int = 200) -> dict[str, float]:
    """N waiting jobs, no worker: fill rate, memory per job, counts() and metrics() times."""
    warm_up(r)
    before = common.used_memory(r)
    start = time.perf_counter()
    enqueue_many(n)
    fill_s = time.perf_counter() - start
    after = common.used_memory(r)
    _check_waiting(r, n)
    queue = tasks.Queue(QUEUE)
    # Where the bytes are: one job's hash, and one broker message (a Redis list entry).
    job_id = r.zrange(keys.state(QUEUE, "waiting"), 0, 0)[0].decode()
    message = next(r.lindex(key, 0) for key in common.queue_keys(QUEUE) if r.llen(key))
    return {
        "n": n,
        "sample_job_hash_bytes": r.memory_usage(keys.job(QUEUE, job_id)),
        "sample_job_hash_fields": r.hlen(keys.job(QUEUE, job_id)),
        "sample_job_hash_encoding": r.object("encoding", keys.job(QUEUE, job_id)).decode(),
        "sample_message_bytes": len(message),
        "fill_jobs_per_s": n / fill_s,
        "bytes_per_waiting_job": (after - before) / n,
        "used_memory_delta_bytes": after - before,
        "counts": common.time_calls(queue.counts, calls),
        "metrics": common.time_calls(queue.metrics, calls),
    }
