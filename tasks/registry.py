"""The job type registry: each job type declared once (name, queue, function)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class JobContext:
    """What a job function learns about the job it is running."""

    id: str
    name: str
    queue: str


@dataclass(frozen=True)
class JobType:
    name: str
    queue: str
    func: Callable[..., Any]
    task: Task


_REGISTRY: dict[str, JobType] = {}


class UnknownJobType(LookupError):
    def __init__(self, name: str) -> None:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        super().__init__(f"unknown job type {name!r}; known job types: {known}")
        self.name = name


def job_type(name: str, *, queue: str = settings.JOBYARD_DEFAULT_QUEUE) -> Callable:
    """Declare `func(job, **params)` as the job type `name`, run on `queue`."""
    if queue not in settings.JOBYARD_QUEUES:
        raise ImproperlyConfigured(
            f"job type {name!r}: unknown queue {queue!r}; queues: {', '.join(settings.JOBYARD_QUEUES)}"
        )

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].func is not func:
            raise ImproperlyConfigured(f"job type {name!r} is declared twice")

        @shared_task(name=name, bind=True)
        def entry_point(task: Task, **params: Any) -> Any:
            request = task.request
            context = JobContext(id=request.id, name=name, queue=queue)
            return func(context, **params)

        _REGISTRY[name] = JobType(name=name, queue=queue, func=func, task=entry_point)
        return func

    return decorate


def get_job_type(name: str) -> JobType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownJobType(name) from None


def job_types() -> dict[str, JobType]:
    return dict(_REGISTRY)


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any):
    """Celery router: a job type's declared queue is its route."""
    declared = _REGISTRY.get(name)
    return {"queue": declared.queue} if declared else None
