"""Built-in job types of the platform, and their default schedules."""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from typing import Any, Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from tasks.errors import JobyardError
from tasks.job import Job
from tasks.queue import Queue
from tasks.registry import get_job_type, job_type
from tasks.scheduling.defaults import default_schedule
from tasks.scheduling.patterns import InvalidSchedule, parse_pattern, split_pattern, zone
from tasks.scheduling.service import install_schedule
from tasks.states import FINISHED


@job_type("ping", queue="default", attempts=1)
def ping(job: Job, sent_at: float | None = None) -> dict[str, Any]:
    """The smoke test of the whole pipeline: returns pong and when it ran."""
    started = time.time()
    return {
        "pong": True,
        "jobId": job.id,
        "worker": socket.gethostname(),
        "sentAt": sent_at,
        "startedAt": started,
        "queueMs": round((started - sent_at) * 1000, 3) if sent_at else None,
    }


@job_type("clean-finished-jobs", queue="cleanup", attempts=3)
def clean_finished_jobs(job: Job, older_than_hours: int = 24 * 7) -> dict[str, int]:
    """Retention by age: remove completed and failed jobs older than the given hours.

    Count-based retention (the last 100 completed, 50 failed) happens as jobs finish; this
    bounds how long any finished job stays, in every queue.
    """
    removed: dict[str, int] = {}
    for name in settings.JOBYARD_QUEUES:
        queue = Queue(name)
        for state in FINISHED:
            total = 0
            while batch := queue.clean(older_than_hours * 3_600_000, 1000, state):
                total += len(batch)
            removed[f"{name}.{state}"] = total
    return removed


default_schedule("jobyard-clean-finished-jobs", "clean-finished-jobs", cron="30 3 * * *")


class PruneArchiveParams(BaseModel):
    """`prune-archive`: delete archive rows older than their retention (by default every
    queue's, every final state's, each by its configured age)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
    #: One queue only (default: every queue).
    queue: str | None = None
    #: One final state only (default: completed, failed and cancelled).
    state: Literal["completed", "failed", "cancelled"] | None = None
    #: An age for this run instead of the configured ones.
    older_than_days: float | None = Field(default=None, ge=0, le=36_500)

    @field_validator("queue")
    @classmethod
    def _check_queue(cls, value: str | None) -> str | None:
        if value is not None and value not in settings.JOBYARD_QUEUES:
            raise PydanticCustomError(
                "unknown_queue", "unknown queue; queues are {queues}",
                {"queues": ", ".join(settings.JOBYARD_QUEUES)},
            )  # fmt: skip
        return value


@job_type("prune-archive", queue="cleanup", attempts=3, schema=PruneArchiveParams)
def prune_archive_job(job: Job, queue: str | None, state: str | None,
                      older_than_days: float | None) -> dict[str, Any]:  # fmt: skip
    """Bound the job archive: rows of finished jobs older than their queue's retention go,
    with their attempts, a few thousand a transaction (tasks/archive_retention.py)."""
    from tasks.archive_retention import prune_archive

    done = {"rows": 0, "batches": 0}

    def report(batch) -> None:
        done["rows"] += batch.rows
        done["batches"] += 1
        job.update_progress({**done, "queue": batch.queue, "state": batch.state})

    summary = prune_archive(
        queues=[queue] if queue else None, states=[state] if state else None,
        older_than=timedelta(days=older_than_days) if older_than_days is not None else None,
        on_batch=report,
    )  # fmt: skip
    return summary.to_dict()


# Daily, after clean-finished-jobs, when the archive is quietest.
default_schedule("jobyard-prune-archive", "prune-archive", cron="45 3 * * *")


class ScheduleRecurringParams(BaseModel):
    """`schedule-recurring`: install (or replace) schedule `key` running job type `target`.

    (Not `jobType`: in the trigger API's body that names the job to run, this one.)
    """

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
    key: str = Field(min_length=1, max_length=200)
    target: str
    #: A cron pattern (5 fields, or 6 with seconds first), `every 30s`, or `at <ISO time>`.
    pattern: str
    params: dict[str, Any] = Field(default_factory=dict)
    timezone: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    misfire: str = "once"

    # The same checks install_schedule makes, so a bad request fails at the trigger (422),
    # each error on its field.
    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        # Malformed, never firing (`0 0 30 2 *`), or a time out of range. Whether a pattern
        # fires does not depend on its zone: read in UTC here, the zone checked on its own.
        try:
            parse_pattern(value, "UTC", anchor=_now())
        except InvalidSchedule as exc:
            raise _field_error("pattern", exc) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        try:
            if value is not None:
                zone(value)
        except InvalidSchedule as exc:
            raise _field_error("timezone", exc) from None
        return value

    @model_validator(mode="after")
    def _check(self) -> ScheduleRecurringParams:
        get_job_type(self.target).validate(self.params)
        if self.misfire not in ("once", "skip"):
            raise ValueError("misfire must be once or skip")
        return self


def _field_error(field: str, exc: InvalidSchedule) -> PydanticCustomError:
    """Field `field`'s validation error: InvalidSchedule's words, without the field's name
    again (but with a narrower one: `pattern (day of week): ...`, `at: ...`)."""
    reason = exc.reason if exc.field == field else str(exc)
    return PydanticCustomError("invalid_schedule", "{reason}", {"reason": reason})


def _now():
    from django.utils import timezone

    return timezone.now()


@job_type("schedule-recurring", queue="default", attempts=1, schema=ScheduleRecurringParams)
def schedule_recurring(job: Job, key: str, target: str, pattern: str,
                       params: dict[str, Any], timezone: str | None, options: dict[str, Any],
                       misfire: str) -> dict[str, Any]:  # fmt: skip
    """Install a schedule through the job system (the trigger API, the CLI, the admin)."""
    from tasks.scheduling.service import epoch_ms, next_run

    spec = split_pattern(pattern)
    try:
        task, created = install_schedule(key, target, params, timezone_name=timezone,
                                         options=options, misfire=misfire, **spec)  # fmt: skip
    except JobyardError as exc:
        from tasks.errors import PermanentError

        raise PermanentError(str(exc)) from exc
    upcoming = next_run(task)
    return {"key": key, "created": created, "next": epoch_ms(upcoming)}
