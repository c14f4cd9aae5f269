"""Sending jobs: the one helper every caller goes through."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from celery.result import AsyncResult
from django.db import transaction

from tasks.registry import get_job_type


def enqueue(name: str, data: dict[str, Any] | None = None) -> AsyncResult:
    """Send job type `name` with `data`; inside a transaction, only once it commits."""
    declared = get_job_type(name)
    job_id = str(uuid4())
    params = dict(data or {})
    transaction.on_commit(
        lambda: declared.task.apply_async(kwargs=params, task_id=job_id, queue=declared.queue)
    )
    return declared.task.AsyncResult(job_id)
