"""The alert rules: plain functions from a snapshot of the platform's figures to readings.

A reading says whether a rule fires for one subject now, with its value and threshold.
No I/O here (snapshot() gathers the figures): each rule is tested on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

import tasks

WAITING_DEPTH = "waiting-depth"
FAILURE_RATE = "failure-rate"
STALLED = "queue-stalled"
NO_WORKER = "no-worker"
WORKER_LOST = "worker-lost"
REDIS_MEMORY = "redis-memory"
RULES = (WAITING_DEPTH, FAILURE_RATE, STALLED, NO_WORKER, WORKER_LOST, REDIS_MEMORY)


@dataclass(frozen=True)
class Reading:
    rule: str
    subject: str
    value: float
    threshold: float
    firing: bool
    message: str


@dataclass
class Snapshot:
    """What the rules read, gathered once per check."""

    now: float  # seconds
    metrics: dict[str, dict[str, Any]]  # tasks.all_queue_metrics()
    workers: list[dict[str, Any]]  # tasks.get_workers()
    lost: list[dict[str, Any]]  # tasks.lost_workers()
    memory: dict[str, int]  # tasks.redis_memory()
    #: queue -> age (s) of the first waiting job, for queues where a rule needs it.
    oldest_waiting: dict[str, float | None] = field(default_factory=dict)


def thresholds(queue: str) -> dict[str, Any]:
    """The queue's thresholds: ALERTS' defaults with its QUEUES[queue] overrides; None: off."""
    conf = settings.ALERTS
    return {**conf, **conf.get("QUEUES", {}).get(queue, {})}


def waiting(figures: dict[str, Any]) -> int:
    counts = figures["counts"]
    # A paused queue's waiting jobs are counted as paused: they wait all the same.
    return int(counts.get("waiting", 0)) + int(counts.get("paused", 0))


def finished_in(figures: dict[str, Any], minutes: int, now: float) -> tuple[int, int]:
    """(completed, failed) in the last `minutes` whole minutes and this one so far, from
    the metrics' per-minute series (an hour long)."""
    first = (int(now // 60) - minutes) * 60
    recent = [m for m in figures["lastHour"] if m["minute"] > first]
    return sum(m["completed"] for m in recent), sum(m["failed"] for m in recent)


def queue_readings(queue: str, figures: dict[str, Any], snap: Snapshot) -> list[Reading]:
    t = thresholds(queue)
    out: list[Reading] = []
    depth = waiting(figures)

    if t["WAITING_DEPTH"] is not None:
        limit = t["WAITING_DEPTH"]
        out.append(Reading(WAITING_DEPTH, queue, depth, limit, depth > limit,
                           f"{queue}: {depth} jobs waiting (threshold {limit})"))  # fmt: skip

    if t["FAILURE_RATE"] is not None:
        window = t["FAILURE_WINDOW_MINUTES"]
        done, failed = finished_in(figures, window, snap.now)
        finished = done + failed
        rate = failed / finished if finished else 0.0
        firing = finished >= t["FAILURE_MIN_FINISHED"] and rate > t["FAILURE_RATE"]
        out.append(Reading(
            FAILURE_RATE, queue, round(rate, 4), t["FAILURE_RATE"], firing,
            f"{queue}: {rate:.0%} of jobs failed in the last {window} min"
            f" ({failed} of {finished}; threshold {t['FAILURE_RATE']:.0%})",
        ))  # fmt: skip

    age = snap.oldest_waiting.get(queue)
    if t["STALLED_MINUTES"] is not None:
        minutes = t["STALLED_MINUTES"]
        done, failed = finished_in(figures, minutes, snap.now)
        waited = (age or 0) / 60
        firing = (depth > 0 and not figures["paused"] and done + failed == 0
                  and age is not None and waited >= minutes)  # fmt: skip
        out.append(Reading(
            STALLED, queue, round(waited, 1), minutes, firing,
            f"{queue}: {depth} jobs waiting and none finished for {minutes} min"
            f" (the first has waited {waited:.0f} min)",
        ))  # fmt: skip

    if t["NO_WORKER_MINUTES"] is not None:
        minutes = t["NO_WORKER_MINUTES"]
        live = [w for w in snap.workers if queue in w["queues"]]
        waited = (age or 0) / 60
        firing = (depth > 0 and not figures["paused"] and not live
                  and age is not None and waited >= minutes)  # fmt: skip
        out.append(Reading(
            NO_WORKER, queue, depth, minutes, firing,
            f"{queue}: no live worker consumes it and {depth} jobs wait"
            f" (the first for {waited:.0f} min)",
        ))  # fmt: skip
    return out


def needs_oldest(
    queue: str, figures: dict[str, Any], workers: list[dict[str, Any]], now: float
) -> bool:
    """Whether the queue's first waiting job must be read (one Redis round trip): only when
    jobs wait, unpaused, and none finished lately or no worker consumes the queue."""
    if waiting(figures) == 0 or figures["paused"]:
        return False
    t = thresholds(queue)
    idle = (
        t["STALLED_MINUTES"] is not None
        and sum(finished_in(figures, t["STALLED_MINUTES"], now)) == 0
    )
    orphan = t["NO_WORKER_MINUTES"] is not None and not any(queue in w["queues"] for w in workers)
    return idle or orphan


def worker_readings(snap: Snapshot) -> list[Reading]:
    if not settings.ALERTS["WORKER_LOST"]:
        return []
    ttl = settings.JOBYARD["HEARTBEAT_INTERVAL_MS"] * 3 / 1000
    return [
        Reading(WORKER_LOST, lost["name"], round(snap.now - lost["lastHeartbeat"] / 1000), ttl, True,
                f"worker {lost['name']} stopped sending heartbeats without a goodbye"
                f" {snap.now - lost['lastHeartbeat'] / 1000:.0f} s ago (killed, out of memory,"
                " or its host lost): its running jobs are rerun once their locks expire")
        for lost in snap.lost
    ]  # fmt: skip


def memory_readings(snap: Snapshot) -> list[Reading]:
    used, most = snap.memory["used"], snap.memory["max"]
    if not most:  # no maxmemory: no percentage to speak of
        return []
    limit = settings.ALERTS["REDIS_MEMORY_PERCENT"]
    percent = round(used * 100 / most, 1)
    return [Reading(REDIS_MEMORY, "redis", percent, limit, percent > limit,
                    f"Redis uses {percent}% of its maxmemory ({used} of {most} bytes;"
                    f" threshold {limit}%)")]  # fmt: skip


def snapshot() -> Snapshot:
    """The figures, read once: one metrics script call, the worker list, the lost workers,
    INFO memory, and the first waiting job of a queue only where a rule needs it."""
    now = time.time()
    metrics = tasks.all_queue_metrics()
    workers = tasks.get_workers()
    lost = tasks.lost_workers()
    oldest: dict[str, float | None] = {}
    for queue, figures in metrics.items():
        if needs_oldest(queue, figures, workers, now):
            first = tasks.Queue(queue).get_jobs(
                ["paused" if figures["paused"] else "waiting"], 0, 0
            )
            created = first[0].created_at if first and first[0].created_at else None
            oldest[queue] = None if created is None else max(0.0, now - created / 1000)
    return Snapshot(now, metrics, workers, lost, tasks.redis_memory(), oldest)


def readings(snap: Snapshot) -> list[Reading]:
    out: list[Reading] = []
    for queue, figures in snap.metrics.items():
        out += queue_readings(queue, figures, snap)
    return out + worker_readings(snap) + memory_readings(snap)
