"""The job type registry: each job type declared once.

A declaration names the job type, its queue, its parameter schema (from the function's
signature, or an explicit pydantic model) and its default options. That one declaration
drives enqueue validation, routing, the HTTP trigger API, the CLI and the admin form.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticSerializationError

from tasks.errors import InvalidJobData, UnknownJobType, UnknownQueue
from tasks.options import ID_PATTERN, JobOptions, parse_options, validation_errors


@dataclass(frozen=True)
class JobType:
    name: str
    queue: str
    func: Callable[..., Any]
    schema: type[BaseModel]
    defaults: JobOptions
    #: Exceptions no retry will fix: a job raising one fails at once.
    throws: tuple[type[BaseException], ...]
    description: str

    def validate(self, data: dict[str, Any] | None) -> dict[str, Any]:
        """The job's parameters as JSON-ready snake_case, or InvalidJobData naming fields."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidJobData(self.name, [{"field": "(root)", "message": "must be an object"}])
        # Before validation: pydantic's JSON mode would quietly turn an Infinity into null.
        bad = _non_finite(data)
        if bad:
            raise InvalidJobData(self.name, [{"field": bad, "message": "must be a finite number"}])
        try:
            params = self._strict(data).model_dump(mode="json")
        except ValidationError as exc:
            raise InvalidJobData(self.name, validation_errors(exc)) from None
        except PydanticSerializationError as exc:  # a value with no JSON form
            raise InvalidJobData(self.name, [{"field": "(root)", "message": str(exc)}]) from None
        return params

    def _strict(self, data: dict[str, Any]) -> BaseModel:
        """`data` validated with JSON's types kept apart: a string is not a number ("12")
        and a boolean is not a number (true) nor a number a boolean, whoever sends them;
        an integer is fine for a float, and an ISO string for a date (pydantic's strict
        JSON mode). Parameters that JSON cannot hold (a date or a UUID object, from Python)
        are judged in pydantic's strict Python mode instead."""
        try:
            as_json = json.dumps(data, allow_nan=False)
        except (TypeError, ValueError):
            return self.schema.model_validate(data, strict=True)
        return self.schema.model_validate_json(as_json, strict=True)

    def json_schema(self) -> dict[str, Any]:
        return self.schema.model_json_schema(by_alias=True)


def _non_finite(value: Any, path: str = "") -> str | None:
    """JSON has no NaN or Infinity: the path of the first such number, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(root)"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


_REGISTRY: dict[str, JobType] = {}
_LISTENERS: list[Callable[[JobType], None]] = []
_SCHEMA_CONFIG = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


def _schema_from_signature(name: str, func: Callable[..., Any]) -> type[BaseModel]:
    params = list(inspect.signature(func).parameters.values())
    if not params:
        raise ImproperlyConfigured(f"job type {name!r}: the function must take `job` first")
    fields: dict[str, Any] = {}
    for param in params[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ImproperlyConfigured(
                f"job type {name!r}: parameter {param.name!r} must be a named parameter"
            )
        annotation = Any if param.annotation is param.empty else param.annotation
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    model_name = "".join(part.title() for part in re.split(r"[^A-Za-z0-9]", name)) + "Params"
    return create_model(model_name, __config__=_SCHEMA_CONFIG, **fields)


def job_type(
    name: str,
    *,
    queue: str | None = None,
    schema: type[BaseModel] | None = None,
    throws: tuple[type[BaseException], ...] = (),
    **default_options: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare `func(job, **params)` as job type `name`.

    Default options (attempts, backoff, timeout, priority, remove_on_complete, ...) are
    validated here: an unknown or out-of-range option is an error at declaration, not a
    surprise at enqueue.
    """
    queue = queue or settings.JOBYARD_DEFAULT_QUEUE
    if not re.match(ID_PATTERN, name):
        raise ImproperlyConfigured(f"job type name {name!r} must match {ID_PATTERN}")
    if queue not in settings.JOBYARD_QUEUES:
        raise ImproperlyConfigured(
            f"job type {name!r}: unknown queue {queue!r}; queues: {', '.join(settings.JOBYARD_QUEUES)}"
        )
    if "job_id" in default_options or "jobId" in default_options:
        raise ImproperlyConfigured(f"job type {name!r}: job_id is per enqueue, not a default")
    defaults = parse_options(
        {
            "attempts": settings.JOBYARD["DEFAULT_ATTEMPTS"],
            "backoff": settings.JOBYARD["DEFAULT_BACKOFF"],
            **default_options,
        }
    )

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        existing = _REGISTRY.get(name)
        if existing and existing.func.__qualname__ != func.__qualname__:
            raise ImproperlyConfigured(f"job type {name!r} is declared twice")
        declared = JobType(
            name=name, queue=queue, func=func, schema=schema or _schema_from_signature(name, func),
            defaults=defaults, throws=tuple(throws),
            description=inspect.cleandoc(func.__doc__ or "").split("\n\n")[0],
        )  # fmt: skip
        _REGISTRY[name] = declared
        for listener in _LISTENERS:
            listener(declared)
        return JobFunction(func, name)

    return decorate


class JobFunction:
    """What @job_type returns: the function itself (calling it calls it, `job` first), and
    the job type's Celery task for everything else: `resize.delay(width=3)`,
    `resize.apply_async(kwargs={...}, countdown=5)`, `resize.si(...)` in a chain. Those
    validate the parameters at the caller and return a JobResult (a Celery AsyncResult
    whose `.job` is the registry's view of the job)."""

    def __init__(self, func: Callable[..., Any], name: str) -> None:
        functools.update_wrapper(self, func)
        self.job_type = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    @property
    def task(self) -> Any:
        """The Celery task of this job type (made by tasks.worker.install)."""
        from celery import current_app

        return current_app.tasks[self.job_type]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.task, attr)

    def __repr__(self) -> str:
        return f"<job type {self.job_type!r}: {self.__wrapped__!r}>"


def on_declare(listener: Callable[[JobType], None]) -> None:
    """Call `listener` with every job type, those declared already and those to come.

    This is how the worker side (tasks.worker.runner.install_task) makes each job type's
    Celery task without the registry importing it: the registry stays at the bottom.
    """
    _LISTENERS.append(listener)
    for declared in list(_REGISTRY.values()):
        listener(declared)


def get_job_type(name: str) -> JobType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownJobType(name, sorted(_REGISTRY)) from None


def find_job_type(name: str) -> JobType | None:
    """Job type `name`, or None: a plain Celery task (or nothing known here)."""
    return _REGISTRY.get(name)


def job_types() -> dict[str, JobType]:
    return dict(sorted(_REGISTRY.items()))


def check_queue(name: str) -> str:
    if name not in settings.JOBYARD_QUEUES:
        raise UnknownQueue(name, list(settings.JOBYARD_QUEUES))
    return name


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any):
    """Celery router: a job type's declared queue is its route."""
    declared = _REGISTRY.get(name)
    return {"queue": declared.queue} if declared else None


def dumps(value: Any) -> str:
    """JSON as the registry stores it: compact, and no NaN or Infinity."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)
