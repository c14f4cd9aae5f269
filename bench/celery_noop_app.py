"""The plain-Celery baseline app: stock kombu Redis transport, no Django, no job registry.

Its broker settings are the project's (bench.common.TRANSPORT_OPTIONS: visibility timeout
3600 s, priority lists in ten steps with ':' as separator), and so are JSON, late acks,
prefetch 1 and no results, so the two sides differ only by what Jobyard adds or replaces.
The broker URL comes from BENCH_REDIS_URL (here and in the workers).
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery
from kombu import Queue

from bench.common import TRANSPORT_OPTIONS

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = "bench"


#: Named by path: in a process that imported `project` (bench/run.py does), redis:// means
#: Jobyard's transport (project/broker.py), and the baseline must stay stock kombu.
STOCK_KOMBU = "kombu.transport.redis:Transport"


def make_app(transport: str = STOCK_KOMBU, name: str = "bench_celery") -> Celery:
    """The baseline app; `transport` (a kombu transport path) only for the profile step."""
    app = Celery(name, broker=REDIS_URL, set_as_current=False)
    app.conf.update(
        broker_transport=transport,
        broker_transport_options=dict(TRANSPORT_OPTIONS),
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        task_queues=[Queue(QUEUE, routing_key=QUEUE)],
        worker_hijack_root_logger=False,
    )
    app.task(name="bench.noop", shared=False)(noop)
    app.task(name="bench.stamp", shared=False)(stamp)
    app.task(name="bench.http_wait", shared=False)(http_wait)
    return app


_clients: dict[int, redis.Redis] = {}


def _client() -> redis.Redis:
    """One Redis client per process (prefork children must not share sockets)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = redis.Redis.from_url(REDIS_URL)
    return _clients[pid]


def noop() -> None:
    """Do nothing."""


def http_wait(url: str) -> None:
    """One GET to a local server that answers in 20 ms (bench/io_wait.py)."""
    from bench.http_wait import get

    get(url)


def stamp(list_key: str, sent_at: float) -> None:
    """Push the ms from `sent_at` (taken just before apply_async) to this start."""
    started = time.time()
    _client().rpush(list_key, (started - sent_at) * 1000.0)


app = make_app()
