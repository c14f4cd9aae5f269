"""Dramatiq on Redis, the benchmarks' other Python peer: a no-op actor and the I/O-bound one.

    dramatiq bench.dramatiq_app -p 1 -t 50 -Q bench

The broker URL comes from BENCH_REDIS_URL. Dramatiq's defaults are kept (its Redis broker,
its default middleware: age limit, time limit, shutdown, callbacks, pipelines, retries),
except that results are not stored (none is configured) and Prometheus is off (it is not
in the default middleware without the `prometheus` extra).
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.http_wait import get

QUEUE = "bench"
broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop() -> None:
    """Do nothing."""


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def http_wait(url: str) -> None:
    """One GET to the local server that answers in 20 ms."""
    get(url)
