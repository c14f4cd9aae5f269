"""Flower, the Jobyard way: `python -m tasks.flower [Flower's options]` (the Procfile's `flower`).

It is `celery -A project flower` with Flower's own pages, API and options, and three changes:

- /metrics and /healthcheck ask for the basic auth like every other page. Flower 2.2 serves
  both to anyone who reaches its port, and /metrics names every task, worker and queue.
- It refuses to start without basic auth (FLOWER_BASIC_AUTH=user:password, read by Flower
  from the environment, so the password stays out of the process list).
- The Broker page and /api/queues/length list every queue Jobyard declares
  (CELERY_TASK_QUEUES) besides those online workers consume. Flower lists only the latter
  while any worker is up, which hides the one backlog that matters: a queue whose workers
  are all down.

Plain `celery -A project flower` still runs, without these: use it only where its port is
reachable by nobody else. The queue lengths sum a queue's ten priority lists (`priority_steps`
and `sep` from the broker transport options, which Flower's Redis broker reads) and need a
broker URL whose scheme Flower knows (redis://, rediss://, sentinel://, redis+socket://).

Flower's handler classes are swapped in its router after Flower built it; each must be found
where Flower 2.2 routes it, or Flower does not start (pyproject pins flower to 2.2.x, and
tests/test_flower.py runs this module against a real worker).
"""

from __future__ import annotations

import sys
from typing import Any

from flower import command
from flower.api import tasks as flower_api_tasks
from flower.app import Flower
from flower.views import broker as flower_broker
from flower.views import monitor
from tornado import web


class Metrics(monitor.Metrics):
    """Flower's Prometheus text, for callers with the basic auth (401 without)."""

    @web.authenticated
    async def get(self) -> None:
        await super().get()


class Healthcheck(monitor.Healthcheck):
    """Flower's "OK", for callers with the basic auth (401 without)."""

    @web.authenticated
    async def get(self) -> None:
        await super().get()


class _DeclaredQueues:
    """Every declared queue, whether or not a worker consumes it, plus any other queue an
    online worker consumes."""

    def get_active_queue_names(self) -> list[str]:
        names = set(super().get_active_queue_names())  # type: ignore[misc]
        names.update(q.name for q in self.capp.conf.task_queues or () if q.name)  # type: ignore[attr-defined]
        return sorted(names)


class BrokerView(_DeclaredQueues, flower_broker.BrokerView):
    pass


class GetQueueLengths(_DeclaredQueues, flower_api_tasks.GetQueueLengths):
    pass


#: Flower's handler -> Jobyard's, for the routes Flower 2.2 declares in flower/urls.py.
HANDLERS: dict[type, type] = {
    monitor.Metrics: Metrics,
    monitor.Healthcheck: Healthcheck,
    flower_broker.BrokerView: BrokerView,
    flower_api_tasks.GetQueueLengths: GetQueueLengths,
}

NO_BASIC_AUTH = (
    "flower: set FLOWER_BASIC_AUTH=user:password (several: a:b,c:d); Jobyard's Flower does not"
    " run without it"
)


class JobyardFlower(Flower):
    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        if options is None or not [c for c in options.basic_auth or () if ":" in c]:
            raise SystemExit(NO_BASIC_AUTH)
        super().__init__(options=options, **kwargs)
        swapped = set()
        for rule in self.wildcard_router.rules:
            ours = HANDLERS.get(rule.target)
            if ours is not None:
                swapped.add(rule.target)
                rule.target = ours
                if hasattr(rule, "handler_class"):  # a tornado.web.url (URLSpec)
                    rule.handler_class = ours
        missing = sorted(h.__name__ for h in set(HANDLERS) - swapped)
        if missing:
            raise RuntimeError(
                f"Flower's routes changed: {', '.join(missing)} not found; tasks/flower.py"
                " protects them and must be checked against this Flower version"
            )


def main(argv: list[str] | None = None) -> None:
    """`celery -A project flower ARGV...`, with JobyardFlower as the application."""
    from celery.bin.celery import main as celery_main

    if command.Flower not in (Flower, JobyardFlower):
        raise RuntimeError("flower.command no longer builds flower.app.Flower")
    command.Flower = JobyardFlower
    args = sys.argv[1:] if argv is None else argv
    sys.argv = ["celery", "-A", "project", "flower", *args]
    sys.exit(celery_main())


if __name__ == "__main__":
    main()
