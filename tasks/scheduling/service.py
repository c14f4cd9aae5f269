"""Schedules: declaring them from code, reading their plan, listing them with next runs.

The store is django-celery-beat's PeriodicTask (edited in the admin; name = key, task =
job type, kwargs = parameters) plus Jobyard's JobSchedule beside it (seconds field,
millisecond intervals, job options, misfire policy, and what was last fired).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tasks.errors import JobyardError
from tasks.options import parse_options
from tasks.registry import get_job_type
from tasks.scheduling.patterns import (
    Cron,
    Every,
    InvalidSchedule,
    Once,
    Pattern,
    parse_cron,
    parse_every,
    parse_kind,
    zone,
)

_PERIOD_MS = {"microseconds": 0.001, "seconds": 1000, "minutes": 60_000, "hours": 3_600_000,
              "days": 86_400_000}  # fmt: skip


@dataclass(frozen=True)
class Spec:
    """One of cron / every / at, as a person or the API writes it."""

    cron: str | None = None
    every: str | int | None = None
    at: str | datetime | None = None
    timezone: str | None = None

    def pattern(self, anchor: datetime) -> Pattern:
        """The pattern, refused if malformed or if it would never fire (parse_kind)."""
        given = [name for name in ("cron", "every", "at") if getattr(self, name) is not None]
        if len(given) != 1:
            raise InvalidSchedule("pattern", "give exactly one of cron, every or at")
        tz = zone(self.timezone or settings.TIME_ZONE)
        (kind,) = given
        return parse_kind(kind, getattr(self, kind), tz, anchor, now=anchor)


def crontab_fields(crontab: Any, seconds: str = "") -> str:
    """A CrontabSchedule row as cron fields, with a leading seconds field if given."""
    c = crontab
    fields = f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"
    return f"{seconds} {fields}" if seconds else fields


def plan_for(task: Any) -> Pattern:
    """The pattern of a PeriodicTask as it is now in the database.

    Only parsed, not checked for ever firing (a row may predate that check): computing the
    runs of such a pattern raises InvalidSchedule, which the beat and the listing handle.
    """
    extra = getattr(task, "jobyard", None)
    if task.crontab_id:
        fields = crontab_fields(task.crontab, extra.seconds if extra else "")
        return parse_cron(fields, str(task.crontab.timezone))
    anchor = extra.anchor if extra else task.date_changed
    if task.interval_id:
        every_ms = (extra.every_ms if extra else None) or round(
            task.interval.every * _PERIOD_MS[task.interval.period]
        )
        return parse_every(int(every_ms), anchor)
    if task.clocked_id:
        return Once(task.clocked.clocked_time.astimezone(UTC))
    raise InvalidSchedule("pattern", "solar schedules are not supported; use a cron pattern")


def fingerprint(task: Any, pattern: Pattern | None = None, problem: str | None = None) -> str:
    """Changes whenever the pattern does: an edited schedule starts afresh, not backfilled.

    Pass the pattern (or why there is none) when it is already parsed: the beat does.
    """
    if pattern is None and problem is None:
        try:
            pattern = plan_for(task)
        except InvalidSchedule as exc:
            problem = str(exc)
    if pattern is None:
        return f"invalid: {problem}"
    return str(pattern) + (f" {task.crontab.timezone}" if task.crontab_id else "")


def run_job_id(key: str, due: datetime) -> str:
    """The id of the job a schedule fires for its run due at `due`.

    Deterministic, so two beats (or a beat taking over from a dead one) that fire the
    same run create one job: the second enqueue finds the first.
    """
    slug = re.sub(r"[^A-Za-z0-9_.:-]+", "-", key).strip("-")[:80] or "schedule"
    digest = hashlib.sha1(key.encode()).hexdigest()[:6]
    return f"sched.{slug}.{digest}.{int(due.timestamp() * 1000)}"


def install_schedule(
    key: str,
    job_type: str,
    params: dict[str, Any] | None = None,
    *,
    cron: str | None = None,
    every: str | int | None = None,
    at: str | datetime | None = None,
    timezone_name: str | None = None,
    options: dict[str, Any] | None = None,
    misfire: str = "once",
    enabled: bool = True,
    replace: bool = True,
) -> tuple[Any, bool]:
    """Create or update schedule `key`; returns (PeriodicTask, created).

    Everything is validated first (job type, parameters against its schema, options, the
    pattern with the field at fault named); with replace=False an existing schedule is
    left exactly as it is (an operator's edit in the admin wins).
    """
    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
    )

    from tasks.scheduling.models import JobSchedule

    if not key or len(key) > 200:
        raise InvalidSchedule("key", "a schedule key has 1 to 200 characters")
    declared = get_job_type(job_type)
    params = declared.validate(params)
    opts = parse_options(options or {})
    if opts.job_id:
        raise InvalidSchedule("options.jobId", "each run gets its own job id")
    if misfire not in JobSchedule.Misfire.values:
        raise InvalidSchedule("misfire", "must be once or skip")
    now = timezone.now()
    pattern = Spec(cron, every, at, timezone_name).pattern(now)

    with transaction.atomic():
        task = PeriodicTask.objects.select_for_update().filter(name=key).first()
        created = task is None
        if not created and not replace:
            return task, False
        task = task or PeriodicTask(name=key)
        task.task, task.kwargs, task.enabled = declared.name, json.dumps(params), enabled
        task.crontab = task.interval = task.clocked = task.solar = None
        task.one_off = isinstance(pattern, Once)
        extra = {"seconds": "", "every_ms": None}
        if isinstance(pattern, Cron):
            fields = pattern.expression.split()
            if pattern.has_seconds:
                extra["seconds"] = fields.pop(0)
            task.crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=fields[0], hour=fields[1], day_of_month=fields[2],
                month_of_year=fields[3], day_of_week=fields[4], timezone=str(pattern.tz),
            )  # fmt: skip
        elif isinstance(pattern, Every):
            extra["every_ms"] = pattern.every_ms
            whole_seconds = pattern.every_ms % 1000 == 0
            task.interval, _ = IntervalSchedule.objects.get_or_create(
                every=pattern.every_ms // 1000 if whole_seconds else pattern.every_ms * 1000,
                period=IntervalSchedule.SECONDS if whole_seconds else IntervalSchedule.MICROSECONDS,
            )
        else:
            task.clocked, _ = ClockedSchedule.objects.get_or_create(clocked_time=pattern.at)
        task.save()
        row, _ = JobSchedule.objects.update_or_create(
            periodic_task=task,
            defaults={**extra, "options": opts.model_dump(mode="json", by_alias=True, exclude_unset=True),
                      "misfire": misfire, "anchor": now, "last_tick": now, "last_error": ""},
        )  # fmt: skip
        task.jobyard = row
        row.fingerprint = fingerprint(task)  # as the beat will compute it: no false "edited"
        row.save(update_fields=["fingerprint"])
    return task, created


def schedule_status(task: Any, now: datetime | None = None) -> tuple[str, datetime | None, str]:
    """(pattern as text, next run or None, error): never raises, whatever is in the row.

    The error is the one the beat recorded (lastError), or, when there is none yet, why
    the pattern cannot be read or computed.
    """
    extra = getattr(task, "jobyard", None)
    recorded = extra.last_error if extra else ""
    try:
        plan = plan_for(task)
    except Exception as exc:  # a listing shows any row, whatever broke it
        return f"invalid ({exc})", None, recorded or describe_error(exc)
    try:
        upcoming = _next(task, plan, now or timezone.now())
    except Exception as exc:  # the pattern of an old row, or a bug: shown, not raised
        return str(plan), None, recorded or describe_error(exc)
    return str(plan), upcoming, recorded


def describe_error(exc: BaseException) -> str:
    """An error as the beat records and the listing shows it."""
    if isinstance(exc, JobyardError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _next(task: Any, pattern: Pattern, now: datetime) -> datetime | None:
    if not task.enabled or (task.one_off and task.total_run_count):
        return None
    return pattern.next_after(now)


def next_run(
    task: Any, now: datetime | None = None, pattern: Pattern | None = None
) -> datetime | None:
    """When the schedule fires next, or None (disabled, invalid, broken, or a one-off
    already run). Never raises."""
    if pattern is None:
        return schedule_status(task, now)[1]
    try:
        return _next(task, pattern, now or timezone.now())
    except Exception:  # see schedule_status
        return None


def list_schedules(queue: str | None = None) -> list[dict[str, Any]]:
    """Every schedule (or those of one queue): key, jobType, queue, pattern, next, enabled.

    Never raises for a row: a schedule that cannot be computed is listed with `next: null`
    and its error in `lastError`.
    """
    from django_celery_beat.models import PeriodicTask

    from tasks.registry import job_types

    known = job_types()
    rows = PeriodicTask.objects.select_related("crontab", "interval", "clocked", "jobyard")
    result = []
    now = timezone.now()
    for task in rows.order_by("name"):
        declared = known.get(task.task)
        task_queue = task.queue or (declared.queue if declared else None)
        if queue is not None and task_queue != queue:
            continue
        pattern, upcoming, error = schedule_status(task, now)
        extra = getattr(task, "jobyard", None)
        result.append(
            {
                "key": task.name,
                "jobType": task.task,
                "queue": task_queue,
                "pattern": pattern,
                "timezone": str(task.crontab.timezone) if task.crontab_id else None,
                "next": upcoming.isoformat() if upcoming else None,
                "enabled": task.enabled,
                "lastRunAt": task.last_run_at.isoformat() if task.last_run_at else None,
                "lastJobId": extra.last_job_id if extra else "",
                "lastError": error,
            }
        )
    return result
