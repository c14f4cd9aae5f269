"""A plain Celery task (a `@shared_task`, not a Jobyard job type) for the beat's tests.

Each run records, in Redis under `{key}:plain`, what the worker received: its task id,
arguments, queue, priority, expiry and headers; and counts itself in `{key}:runs`.
Imported by JobappConfig.ready, so every process of the tests registers it.
"""

from __future__ import annotations

import json
from typing import Any

from celery import shared_task

from tasks.connection import get_redis

NAME = "jobapp.plain-record"


@shared_task(bind=True, name=NAME, ignore_result=True)
def plain_record(self: Any, key: str, *args: Any, **kwargs: Any) -> None:
    request = self.request
    info = request.delivery_info or {}
    run = {
        "id": request.id,
        "args": list(args),
        "kwargs": kwargs,
        "queue": info.get("routing_key"),
        "priority": info.get("priority"),
        "expires": str(request.expires) if request.expires else None,
        "periodic_task_name": (request.headers or {}).get("periodic_task_name")
        or getattr(request, "periodic_task_name", None),
    }
    client = get_redis()
    client.rpush(f"{key}:plain", json.dumps(run))
    client.incr(f"{key}:runs")


def plain_runs(key: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in get_redis().lrange(f"{key}:plain", 0, -1)]
