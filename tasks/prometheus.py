"""Jobyard's own state as Prometheus metrics, read from the registry at scrape time.

A custom collector rather than prometheus-client's Counter and Gauge objects: every figure
is read from Redis (and the schedules from PostgreSQL) when Prometheus scrapes, so the
values agree with the registry, survive restarts of any process, and need no
multiprocess files. The counters are the monotonic totals the Lua scripts keep
(tasks/lua/prelude.lua: count_total), the histograms their bucket counts (observe); a
worker exposes nothing itself: what it did is in Redis, and any web process serves it.

One scrape costs a few Redis round trips (the metrics script for every queue, the
workers' heartbeats, two pipelines of HGETALLs, XINFO per queue, INFO memory, the lease)
and one query of the schedules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from tasks import metrics
from tasks.recorder import recorder_lag
from tasks.registry import job_types
from tasks.scheduling.beat import current_leader
from tasks.scheduling.firing import lateness

log = structlog.get_logger("jobyard.prometheus")

#: Every metric name starts with this (Prometheus's convention: one prefix per exporter).
PREFIX = "jobyard"


def _queues(figures: dict[str, dict[str, Any]], workers: list[dict[str, Any]]) -> Iterator[Metric]:
    jobs = GaugeMetricFamily(
        f"{PREFIX}_queue_jobs",
        "Jobs the registry holds per queue and state (completed and failed: those kept by "
        "retention).",
        labels=["queue", "state"],
    )
    paused = GaugeMetricFamily(
        f"{PREFIX}_queue_paused", "1 while the queue is paused.", labels=["queue"]
    )
    live = GaugeMetricFamily(
        f"{PREFIX}_queue_workers", "Live workers consuming the queue.", labels=["queue"]
    )
    slots = GaugeMetricFamily(
        f"{PREFIX}_queue_worker_concurrency",
        "Summed concurrency of the live workers consuming the queue.",
        labels=["queue"],
    )
    running = GaugeMetricFamily(
        f"{PREFIX}_queue_worker_running_jobs",
        "Jobs the live workers consuming the queue run now (of any of their queues).",
        labels=["queue"],
    )
    for queue, figure in figures.items():
        for state, count in figure["counts"].items():
            jobs.add_metric([queue, state], count)
        paused.add_metric([queue], int(figure["paused"]))
        mine = [w for w in workers if queue in w["queues"]]
        live.add_metric([queue], len(mine))
        slots.add_metric([queue], sum(w["concurrency"] for w in mine))
        running.add_metric([queue], sum(w["running"] for w in mine))
    total = GaugeMetricFamily(f"{PREFIX}_workers", "Live workers (a heartbeat in time).")
    total.add_metric([], len(workers))
    yield from (jobs, paused, live, slots, running, total)


def _totals(queues: list[str]) -> Iterator[Metric]:
    counted = metrics.totals(queues)
    declared: dict[str, list[str]] = {}
    for name, job_type in job_types().items():
        declared.setdefault(job_type.queue, []).append(name)
    for counter, words in metrics.TOTALS.items():
        # CounterMetricFamily appends `_total` to the name.
        family = CounterMetricFamily(
            f"{PREFIX}_jobs_{counter}", words, labels=["queue", "job_type"]
        )
        for queue in queues:
            # Declared types start at 0, so that rate() sees their first increment, and so
            # does every type another counter of the queue has seen: each counter has the
            # same series, so that rules may add or divide them (completed + failed).
            seen = dict.fromkeys(declared.get(queue, []), 0)
            for other in counted[queue].values():
                seen.update(dict.fromkeys(other, 0))
            seen.update(counted[queue][counter])
            for name, value in sorted(seen.items()):
                family.add_metric([queue, name], value)
        yield family


def _histograms(queues: list[str]) -> Iterator[Metric]:
    observed = metrics.histograms(queues)
    for timing, words in metrics.TIMINGS.items():
        family = HistogramMetricFamily(
            f"{PREFIX}_job_{timing}_seconds", words, labels=["queue", "job_type"]
        )
        for queue in queues:
            for name, entry in sorted(observed[queue][timing].items()):
                buckets = [
                    ("+Inf" if math.isinf(bound) else f"{bound / 1000:g}", count)
                    for bound, count in entry["buckets"]
                ]
                family.add_metric([queue, name], buckets, entry["sum_ms"] / 1000)
        yield family


def _recorder() -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        f"{PREFIX}_recorder_lag_events",
        "Events on the queue's stream the recorder has not archived yet.",
        labels=["queue"],
    )
    for queue, value in recorder_lag().items():
        if value is not None:  # no recorder group yet: unknown, not 0
            lag.add_metric([queue], value)
    yield lag


def _beat() -> Iterator[Metric]:
    leader = GaugeMetricFamily(
        f"{PREFIX}_beat_leader", "1 while a beat holds the leader lease (schedules fire)."
    )
    leader.add_metric([], int(current_leader() is not None))
    yield leader
    late = GaugeMetricFamily(
        f"{PREFIX}_schedule_lateness_seconds",
        "Seconds since the schedule's latest due run that has not fired; 0 when on time.",
        labels=["schedule"],
    )
    for key, seconds in sorted(lateness().items()):
        late.add_metric([key], seconds)
    yield late


def _redis() -> Iterator[Metric]:
    memory = metrics.redis_memory()
    used = GaugeMetricFamily(f"{PREFIX}_redis_memory_used_bytes", "Redis's used_memory.")
    used.add_metric([], memory["used"])
    limit = GaugeMetricFamily(
        f"{PREFIX}_redis_memory_max_bytes", "Redis's maxmemory (0: no limit)."
    )
    limit.add_metric([], memory["max"])
    yield from (used, limit)


class JobyardCollector:
    """The collector behind /metrics: each section read at scrape time. A section whose
    source is away (PostgreSQL for the schedules, say) is left out of that scrape and
    `jobyard_scrape_section_up{section}` says 0, rather than failing the whole scrape."""

    def sections(self) -> dict[str, Callable[[], Iterator[Metric]]]:
        from django.conf import settings

        queues = list(settings.JOBYARD_QUEUES)

        def queues_section() -> Iterator[Metric]:
            workers = metrics.get_workers()
            yield from _queues(metrics.all_queue_metrics(workers), workers)

        return {
            "queues": queues_section,
            "totals": lambda: _totals(queues),
            "histograms": lambda: _histograms(queues),
            "recorder": _recorder,
            "beat": _beat,
            "redis": _redis,
        }

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_scrape_section_up",
            "1 when the section's figures were read in this scrape, 0 when its source failed.",
            labels=["section"],
        )
        for name, section in self.sections().items():
            try:
                found = list(section())
            except Exception:  # a source away: the other sections still answer
                log.warning("metrics_section_failed", section=name, exc_info=True)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from found
        yield up


def exposition() -> bytes:
    """The text Prometheus scrapes: every metric above, read now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobyardCollector())
    return generate_latest(registry)
