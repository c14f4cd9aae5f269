"""Queue metrics: counts, throughput, failure rate, timings, workers.

Counters live in one Redis hash per queue and minute (completed, failed, retried, and the
summed processing ms), written by the same scripts that change job states; timings come
from the last 1,000 samples per queue. Reading the metrics of every queue is one script
call (tasks/lua/metrics.lua), which returns compact rows rather than 62 replies a queue.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings

from tasks import keys, scripts
from tasks.connection import get_redis
from tasks.states import counts_by_state

WINDOW_MINUTES = 60


def _timing(raw: list) -> dict[str, float | None]:
    mean, p95, n = raw
    return {
        "mean": round(float(mean), 3) if n else None,
        "p95": float(p95) if n else None,
        "samples": int(n),
    }


def _series(raw: bytes) -> list[int]:
    return [int(v) for v in raw.split(b",")]


def _queue_figures(
    queue: str, row: list, workers: list[dict[str, Any]], now: float
) -> dict[str, Any]:
    wait, active, completed, failed, delayed, paused, c, f, r, durations, waits, parents = row
    minute = int(now // 60)
    first = minute - WINDOW_MINUTES + 1
    series = [
        {"minute": (first + i) * 60, "completed": done, "failed": bad, "retried": again}
        for i, (done, bad, again) in enumerate(zip(_series(c), _series(f), _series(r), strict=True))
    ]
    # Trailing 60 s: this minute so far plus the unexpired part of the previous one.
    elapsed = (now % 60) / 60
    current, previous = series[-1], series[-2]

    def per_minute(name: str) -> float:
        return round(current[name] + previous[name] * (1 - elapsed), 2)

    completed_hour = sum(s["completed"] for s in series)
    failed_hour = sum(s["failed"] for s in series)
    finished_hour = completed_hour + failed_hour
    # Every attempt that ended in the hour: a retried one failed too, though its job lives
    # on; the final failure rate alone hides a queue whose first attempts mostly fail.
    retried_hour = sum(s["retried"] for s in series)
    attempts_hour = finished_hour + retried_hour
    mine = [w for w in workers if queue in w["queues"]]
    capacity = sum(w["concurrency"] for w in mine)
    running = sum(w["running"] for w in mine)
    return {
        "queue": queue,
        "paused": bool(paused),
        "counts": counts_by_state(wait, active, completed, failed, delayed, paused, parents),
        "completedPerMinute": per_minute("completed"),
        "failedPerMinute": per_minute("failed"),
        "processedPerMinute": round(per_minute("completed") + per_minute("failed"), 2),
        "failureRate": round(failed_hour / finished_hour, 4) if finished_hour else 0.0,
        "retriedPerMinute": per_minute("retried"),
        "attemptFailureRate": (
            round((failed_hour + retried_hour) / attempts_hour, 4) if attempts_hour else 0.0
        ),
        "processingMs": _timing(durations),
        "waitingMs": _timing(waits),
        "workers": len(mine),
        "utilization": round(running / capacity, 4) if capacity else None,
        "lastHour": series,
    }


def _metrics(queues: list[str], workers: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """One script call for all `queues` (counts, the hour's series, timing summaries)."""
    now = time.time()
    rows = scripts.metrics(queues, int(now // 60), WINDOW_MINUTES)
    workers = workers if workers is not None else get_workers()
    return {q: _queue_figures(q, row, workers, now) for q, row in zip(queues, rows, strict=True)}


def queue_metrics(queue: str, workers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return _metrics([queue], workers)[queue]


def all_queue_metrics(workers: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Every queue's figures; `workers`: get_workers() when the caller has read it already."""
    return _metrics(list(settings.JOBYARD_QUEUES), workers)


def get_workers() -> list[dict[str, Any]]:
    """Live workers: host, queues, concurrency, running jobs, paused queues, heartbeat."""
    client = get_redis()
    listed = {
        n.decode(): int(score) for n, score in client.zrange(keys.workers(), 0, -1, withscores=True)
    }
    names = list(listed)
    queues_known = list(settings.JOBYARD_QUEUES)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.worker(name))
    for queue in queues_known:
        pipe.exists(keys.paused(queue))
    replies = pipe.execute()
    paused = {q for q, flag in zip(queues_known, replies[len(names) :], strict=True) if flag}
    workers, gone = [], []
    for name, raw in zip(names, replies[: len(names)], strict=True):
        if not raw:  # its heartbeat expired: the worker is gone
            gone.append(name)
            continue
        h = {k.decode(): v.decode() for k, v in raw.items()}
        queues = json.loads(h["queues"])
        workers.append(
            {
                "name": name,
                "host": h["host"],
                "pid": int(h["pid"]),
                "queues": queues,
                "concurrency": int(h["concurrency"]),
                "running": int(h["running"]),
                "paused": [q for q in queues if q in paused],
                "lastHeartbeat": int(h["lastHeartbeat"]),
                "startedAt": int(h["startedAt"]),
            }
        )
    if gone:
        # A worker that stops says goodbye (it leaves the list itself); one still listed
        # with its heartbeat expired died silently (SIGKILL, OOM, a lost host): remember it,
        # for lost_workers() and the alerts, whoever noticed first.
        pipe = client.pipeline(transaction=True)
        pipe.zrem(keys.workers(), *gone)
        pipe.zadd(keys.lost_workers(), {name: listed[name] for name in gone})
        pipe.zremrangebyscore(keys.lost_workers(), 0, int(time.time() * 1000) - LOST_KEPT_MS)
        pipe.execute()
    return workers


#: How long a silently dead worker stays in lost_workers() after its last heartbeat.
LOST_KEPT_MS = 3_600_000


def lost_workers() -> list[dict[str, Any]]:
    """Workers whose heartbeat stopped without a goodbye in the last hour, as
    {name, lastHeartbeat ms}, oldest first; one live again (the same name) is left out.
    Calls get_workers(), which is what notices an expired heartbeat."""
    live = {w["name"] for w in get_workers()}
    client = get_redis()
    since = int(time.time() * 1000) - LOST_KEPT_MS
    rows = client.zrangebyscore(keys.lost_workers(), since, "+inf", withscores=True)
    return [
        {"name": n.decode(), "lastHeartbeat": int(score)}
        for n, score in rows
        if n.decode() not in live
    ]


def redis_memory() -> dict[str, int]:
    """Redis's memory: {used, max} bytes (INFO memory's used_memory and maxmemory; max is 0
    when no limit is set). One round trip."""
    info = get_redis().info("memory")
    return {"used": int(info.get("used_memory", 0)), "max": int(info.get("maxmemory", 0))}


def last_day(queue: str, hours: int = 24, now: float | None = None) -> list[dict[str, int]]:
    """Completed, failed and retried per hour over the last `hours` (oldest first).

    Summed from the per-minute stats hashes, which the scripts keep for two days: one
    pipelined round trip of hours x 60 HMGETs. The last bucket is the current hour so far.
    """
    now = time.time() if now is None else now
    hour = int(now // 3600)
    first_minute = (hour - hours + 1) * 60
    last_minute = int(now // 60)
    pipe = get_redis().pipeline(transaction=False)
    for m in range(first_minute, last_minute + 1):
        pipe.hmget(keys.stats(queue, m), "completed", "failed", "retried")
    buckets = [
        {"hour": (hour - hours + 1 + i) * 3600, "completed": 0, "failed": 0, "retried": 0}
        for i in range(hours)
    ]
    for m, values in zip(range(first_minute, last_minute + 1), pipe.execute(), strict=True):
        bucket = buckets[m // 60 - (hour - hours + 1)]
        for name, value in zip(("completed", "failed", "retried"), values, strict=True):
            bucket[name] += int(value or 0)
    return buckets


#: How long a worker's "job type unknown to me" report is shown after it was last made.
UNKNOWN_TYPE_SHOWN_MS = 5 * 60_000


def unknown_job_types() -> list[dict[str, Any]]:
    """Job types a worker received and could not run lately (a rolling deploy half done):
    each {worker, jobType, lastSeen ms}; older reports are dropped."""
    client = get_redis()
    now_ms = int(time.time() * 1000)
    found, stale = [], []
    for field, seen in client.hgetall(keys.unknown_types()).items():
        worker, _, name = field.decode().partition("\t")
        if now_ms - int(seen) > UNKNOWN_TYPE_SHOWN_MS:
            stale.append(field)
        else:
            found.append({"worker": worker, "jobType": name, "lastSeen": int(seen)})
    if stale:
        client.hdel(keys.unknown_types(), *stale)
    return sorted(found, key=lambda r: (r["jobType"], r["worker"]))


#: The monotonic totals the scripts keep per queue and job type (tasks/lua: count_total),
#: each with what it counts. They are never trimmed or expired: Prometheus counters.
TOTALS = {
    "completed": "Jobs completed.",
    "failed": "Jobs failed for good (the dead-letter list): attempts, stalls or time used up.",
    "retried": "Failed attempts followed by a retry.",
    "stalled": "Runs found stalled (their worker's lock expired), then run again or failed.",
    "rate_limited": "Claims held back by the queue's rate limit (the job waits, delayed).",
    "expired": "Plain Celery tasks failed because their message was past its expires.",
}
#: The timings kept as histograms, per queue and job type (tasks/lua: observe).
TIMINGS = {
    "processing": "Time a run took, from its start to its outcome.",
    "waiting": "Time a job waited, from becoming waiting to its start.",
}


def totals(queues: list[str] | None = None) -> dict[str, dict[str, dict[str, int]]]:
    """queue -> counter (TOTALS) -> job type -> count, for every queue (or `queues`).
    One pipelined round trip."""
    queues = list(queues or settings.JOBYARD_QUEUES)
    pipe = get_redis().pipeline(transaction=False)
    for queue in queues:
        for counter in TOTALS:
            pipe.hgetall(keys.total(queue, counter))
    replies = iter(pipe.execute())
    return {
        queue: {
            counter: {k.decode(): int(v) for k, v in next(replies).items()} for counter in TOTALS
        }
        for queue in queues
    }


def histograms(queues: list[str] | None = None) -> dict[str, dict[str, dict[str, dict]]]:
    """queue -> timing (TIMINGS) -> job type -> {"buckets": [(upper ms, cumulative count),
    ..., (inf, count)], "sum_ms": total}. One pipelined round trip."""
    queues = list(queues or settings.JOBYARD_QUEUES)
    pipe = get_redis().pipeline(transaction=False)
    for queue in queues:
        for timing in TIMINGS:
            pipe.hgetall(keys.histogram(queue, timing))
    replies = iter(pipe.execute())
    bounds = [*keys.HISTOGRAM_BUCKETS_MS, float("inf")]
    result: dict[str, dict[str, dict[str, dict]]] = {}
    for queue in queues:
        result[queue] = {}
        for timing in TIMINGS:
            per_type: dict[str, dict[str, Any]] = {}
            for field, value in next(replies).items():
                name, _, part = field.decode().rpartition("\t")
                entry = per_type.setdefault(name, {"counts": {}, "sum_ms": 0})
                if part == "sum":
                    entry["sum_ms"] = int(value)
                else:
                    entry["counts"][float(part)] = int(value)  # "+Inf" reads as inf
            for entry in per_type.values():
                running, buckets = 0, []
                for bound in bounds:
                    running += entry["counts"].get(float(bound), 0)
                    buckets.append((bound, running))
                entry["buckets"] = buckets
                del entry["counts"]
            result[queue][timing] = per_type
    return result
