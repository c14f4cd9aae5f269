"""Plain Celery tasks, written as a team coming from Celery writes them: `@shared_task` in an
app's tasks.py, nothing of Jobyard's imported. Each notes its runs in Redis (by key) so a
test can count them from outside the worker."""

from __future__ import annotations

from typing import Any

from celery import shared_task, signals

from tasks.connection import get_redis


def _note(key: str | None, value: Any = 1) -> int:
    if not key:
        return 0
    return get_redis().incr(f"{key}:runs")


@shared_task
def add(x: int, y: int, key: str | None = None) -> int:
    _note(key)
    return x + y


@shared_task
def boom(message: str = "boom", key: str | None = None) -> None:
    _note(key)
    raise ValueError(message)


@shared_task(bind=True, max_retries=3)
def retry_until(self, succeed_on: int, key: str, countdown: float = 0.2) -> int:
    """Fails (and retries with Celery's self.retry) until its `succeed_on`-th run."""
    run = _note(key)
    if run < succeed_on:
        raise self.retry(exc=RuntimeError(f"run {run} failed"), countdown=countdown)
    return run


@shared_task
def note(key: str, value: Any = None) -> Any:
    """Counts its runs, returns `value`: a chain link or a chord header part."""
    _note(key)
    return value


@shared_task
def total(values: list[int]) -> int:
    """A chord's body."""
    return sum(values)


@shared_task
def on_error(request: Any, exc: Any, traceback: Any, key: str) -> None:
    """A link_error callback: notes that it was called, with the failed task's id."""
    get_redis().rpush(f"{key}:errors", request.id)


# Celery's own signals, counted in Redis by every worker the tests start: a test compares
# them with what the registry recorded.
@signals.task_failure.connect
def _count_failure(sender: Any = None, task_id: str = "", **_: Any) -> None:
    get_redis().rpush("signals:failure", task_id)


@signals.task_retry.connect
def _count_retry(sender: Any = None, request: Any = None, **_: Any) -> None:
    get_redis().rpush("signals:retry", request.id if request is not None else "")
