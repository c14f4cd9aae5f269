"""Schedules: declaring them from code, reading their plan, listing them with next runs.

The store is django-celery-beat's PeriodicTask (edited in the admin; name = key, task =
a job type or a plain Celery task, args/kwargs, the execution options) plus Jobyard's
JobSchedule beside it (seconds field of a 6-field cron, job options, misfire policy, and
what was last fired).

One reading of a row for every way in: `plan_for` (when it fires) and `target_of` (what it
sends, where, with which options) serve the beat, the admin form, the listing and the
CELERY_BEAT_SCHEDULE installer alike, so what the admin shows is what fires.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tasks.errors import JobyardError, UnknownJobType
from tasks.options import parse_options
from tasks.registry import JobType, get_job_type
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


def interval_ms(interval: Any) -> int:
    """An IntervalSchedule row in milliseconds."""
    return round(interval.every * _PERIOD_MS[interval.period])


def plan_for(task: Any) -> Pattern:
    """The pattern of a PeriodicTask as it is now in the database.

    What the row shows is what fires: the crontab (with JobSchedule's seconds field in
    front, the one Jobyard field that extends it), the interval row (never a hidden
    millisecond figure: JobSchedule.every_ms must agree with it, the admin form refuses
    one that does not) or the clocked time. An interval with a start time falls on
    start_time + k x interval, as django-celery-beat fires it.

    Only parsed, not checked for ever firing (a row may predate that check): computing the
    runs of such a pattern raises InvalidSchedule, which the beat and the listing handle.
    """
    extra = getattr(task, "jobyard", None)
    if task.crontab_id:
        fields = crontab_fields(task.crontab, extra.seconds if extra else "")
        return parse_cron(fields, str(task.crontab.timezone))
    anchor = task.start_time or (extra.anchor if extra else task.date_changed)
    if task.interval_id:
        return parse_every(interval_ms(task.interval), anchor)
    if task.clocked_id:
        return Once(task.clocked.clocked_time.astimezone(UTC))
    if task.solar_id:
        raise InvalidSchedule("solar", "solar schedules are not supported; use a crontab")
    raise InvalidSchedule("pattern", "no schedule: set an interval, a crontab or a clocked time")


def fingerprint(task: Any, pattern: Pattern | None = None, problem: str | None = None) -> str:
    """Changes whenever the pattern (or the start time) does: an edited schedule starts
    afresh, not backfilled.

    Pass the pattern (or why there is none) when it is already parsed: the beat does.
    """
    if pattern is None and problem is None:
        try:
            pattern = plan_for(task)
        except InvalidSchedule as exc:
            problem = str(exc)
    if pattern is None:
        return f"invalid: {problem}"[:300]
    text = str(pattern) + (f" {task.crontab.timezone}" if task.crontab_id else "")
    if task.start_time:
        text += f" from {task.start_time.astimezone(UTC).isoformat()}"
    return text[:300]


# --- What a schedule sends ---------------------------------------------------------------

#: kombu's Redis transport clamps a message's priority to 0..9 and keeps one list per step
#: (priority_steps 0..9, step 0 polled first): 0 is the highest, 9 the lowest.
MAX_BEAT_PRIORITY = 9


def jobyard_priority(beat_priority: int) -> int:
    """A periodic task's priority (Celery's, on Redis: 0 highest .. 9 lowest, above 9 as 9)
    as a Jobyard priority (1 highest .. 10 lowest): the same broker list either way."""
    return min(max(int(beat_priority), 0), MAX_BEAT_PRIORITY) + 1


def check_priority(priority: int | None) -> None:
    """Refuse what Redis would silently clamp: django-celery-beat's field takes 0..255
    (RabbitMQ's range, where a higher number is more urgent), Redis only 0..9, reversed."""
    if priority is not None and not 0 <= priority <= MAX_BEAT_PRIORITY:
        raise InvalidSchedule(
            "priority",
            f"{priority} is out of range: on Redis a priority is 0 (highest) to "
            f"{MAX_BEAT_PRIORITY} (lowest); Jobyard priority = this + 1",
        )


@dataclass(frozen=True)
class Target:
    """What one run of a schedule sends: a Jobyard job, or a plain Celery task's message."""

    name: str
    queue: str
    #: The job type; None for a plain Celery task (sent as django-celery-beat sends it).
    declared: JobType | None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: enqueue() options of a job type's run; apply_async() options of a plain task's.
    options: dict[str, Any] = field(default_factory=dict)
    celery_task: Any = None


def _json_field(value: Any, name: str, kind: type, empty: str) -> Any:
    """A JSON text field of the row (a form or an entry may hand over the value itself)."""
    if value is None or isinstance(value, str | bytes):
        try:
            value = json.loads(value or empty)
        except ValueError as exc:
            raise InvalidSchedule(name, f"not JSON: {exc}") from None
    if not isinstance(value, kind):
        raise InvalidSchedule(name, f"must be a JSON {'list' if kind is list else 'object'}")
    return value


_imported = False


def registered_task(name: str) -> Any:
    """The Celery task registered under `name` in this process, or None.

    The task modules are imported first, as a worker imports them (and as
    django-celery-beat's admin does): a web process knows the same tasks as a worker.
    """
    from celery import current_app

    global _imported
    if not _imported:
        current_app.loader.import_default_modules()
        _imported = True
    return current_app.tasks.get(name)


def _routed_queue(name: str, args: list, kwargs: dict, celery_task: Any) -> str:
    """The queue a plain task goes to without a queue override: its own, or its route."""
    from celery import current_app

    own = getattr(celery_task, "queue", None)
    if own:
        return own.name if hasattr(own, "name") else str(own)
    route = current_app.amqp.router.route({}, name, args, kwargs)
    queue = route.get("queue")
    return getattr(queue, "name", None) or str(queue or settings.JOBYARD_DEFAULT_QUEUE)


def target_of(task: Any, extra: Any = None) -> Target:
    """What a PeriodicTask row fires, or InvalidSchedule naming the field at fault.

    A job type's run is a Jobyard job: kwargs are its parameters, the priority (Celery's
    0..9) becomes the job's (1..10), the queue is the job type's own; what a job cannot
    carry (args, another queue, exchange, routing key, headers, expire_seconds) is refused,
    never ignored. A plain Celery task is sent as django-celery-beat sends it: args,
    kwargs, queue / exchange / routing key, priority, expires (the date, or
    expire_seconds), headers; its queue must be one of JOBYARD_QUEUES.
    """
    name = task.task or ""
    args = _json_field(task.args, "args", list, "[]")
    kwargs = _json_field(task.kwargs, "kwargs", dict, "{}")
    headers = _json_field(task.headers, "headers", dict, "{}")
    job_options = dict(getattr(extra, "options", None) or {})
    try:
        declared: JobType | None = get_job_type(name)
    except UnknownJobType:
        declared = None
    if declared is not None:
        if args:
            raise InvalidSchedule(
                "args", f"job type {name!r} takes its parameters by name: put them in kwargs"
            )
        if task.queue and task.queue != declared.queue:
            raise InvalidSchedule(
                "queue",
                f"job type {name!r} runs on queue {declared.queue!r}: leave the queue empty "
                f"or set it to {declared.queue!r}",
            )
        for name_of, value in (("exchange", task.exchange), ("routing_key", task.routing_key)):
            if value:
                raise InvalidSchedule(
                    name_of, f"a job type is routed to its queue ({declared.queue}): leave it empty"
                )
        if headers:
            raise InvalidSchedule("headers", "a job type's runs carry no custom headers: leave {}")
        if task.expire_seconds:
            raise InvalidSchedule(
                "expire_seconds",
                "a job type's runs do not expire: leave it empty (the expires date ends the "
                "schedule itself)",
            )
        if task.priority is not None:
            mapped = jobyard_priority(task.priority)
            given = job_options.get("priority")
            if given is not None and given != mapped:
                raise InvalidSchedule(
                    "priority",
                    f"priority {task.priority} (Jobyard priority {mapped}) contradicts the "
                    f"Jobyard options' priority {given}: set one of them",
                )
            job_options["priority"] = mapped
        return Target(name, declared.queue, declared, [], kwargs, job_options)

    celery_task = registered_task(name) if name else None
    if celery_task is None:
        raise InvalidSchedule(
            "task", f"{name!r} is neither a Jobyard job type nor a registered Celery task"
        )
    header = getattr(celery_task, "__header__", None)
    if header is not None and getattr(celery_task, "typing", True):
        try:  # as apply_async checks them: refused here rather than on every run
            header(*args, **kwargs)
        except TypeError as exc:
            raise InvalidSchedule("args" if args else "kwargs", f"{name}: {exc}") from None
    if job_options:
        raise InvalidSchedule(
            "options",
            f"Jobyard job options apply to job types; {name!r} is a plain Celery task: "
            "leave them empty (use priority, queue and expires)",
        )
    queue = task.queue or _routed_queue(name, args, kwargs, celery_task)
    if queue not in settings.JOBYARD_QUEUES:
        raise InvalidSchedule(
            "queue", f"unknown queue {queue!r}; queues: {', '.join(settings.JOBYARD_QUEUES)}"
        )
    options: dict[str, Any] = {}
    for option in ("queue", "exchange", "routing_key", "priority"):
        value = getattr(task, option)
        if value is not None and value != "":
            options[option] = value
    expires = task.expires or task.expire_seconds
    if expires:
        options["expires"] = expires
    # As celery beat's own scheduler sends it (django-celery-beat's ModelEntry).
    options["headers"] = {**headers, "periodic_task_name": task.name, "celery_beat_task": True}
    return Target(name, queue, None, args, kwargs, options, celery_task)


def queue_of(task: Any) -> str | None:
    """The queue a schedule's runs go to, or None when the row cannot be read."""
    try:
        return target_of(task, getattr(task, "jobyard", None)).queue
    except Exception:  # a listing shows any row
        return task.queue or None


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
    return store_schedule(
        key, declared.name, pattern, kwargs=params, enabled=enabled, misfire=misfire,
        job_options=opts.model_dump(mode="json", by_alias=True, exclude_unset=True),
        replace=replace, now=now,
    )  # fmt: skip


#: The execution options of a PeriodicTask, as a CELERY_BEAT_SCHEDULE entry sets them.
EXECUTION_FIELDS = ("queue", "exchange", "routing_key", "priority", "headers", "expires",
                    "expire_seconds")  # fmt: skip


def store_schedule(
    key: str,
    task_name: str,
    pattern: Pattern,
    *,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    job_options: dict[str, Any] | None = None,
    misfire: str = "once",
    enabled: bool = True,
    execution: dict[str, Any] | None = None,
    config_digest: str | None = None,
    replace: bool = True,
    now: datetime | None = None,
) -> tuple[Any, bool]:
    """Write schedule `key` (checked by the caller): the PeriodicTask, its crontab /
    interval / clocked row and Jobyard's row beside it. Returns (PeriodicTask, created).

    `execution` sets the PeriodicTask's execution options (EXECUTION_FIELDS; those not
    given are cleared); without it they are left as they are. The schedule starts afresh
    from now (no backfill), as after an edit.
    """
    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
    )

    from tasks.scheduling.models import JobSchedule

    now = now or timezone.now()
    with transaction.atomic():
        task = PeriodicTask.objects.select_for_update().filter(name=key).first()
        created = task is None
        if not created and not replace:
            return task, False
        task = task or PeriodicTask(name=key)
        task.task, task.enabled = task_name, enabled
        task.args, task.kwargs = json.dumps(args or []), json.dumps(kwargs or {})
        task.crontab = task.interval = task.clocked = task.solar = None
        task.one_off = isinstance(pattern, Once)
        if execution is not None:
            for name in EXECUTION_FIELDS:
                setattr(task, name, execution.get(name))
            task.headers = json.dumps(execution.get("headers") or {})
            task.start_time = None
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
            spec = {
                "every": pattern.every_ms // 1000 if whole_seconds else pattern.every_ms * 1000,
                "period": IntervalSchedule.SECONDS
                if whole_seconds
                else IntervalSchedule.MICROSECONDS,
            }
            # No unique constraint on these rows: the admin may have made a twin.
            task.interval = (IntervalSchedule.objects.filter(**spec).order_by("pk").first()
                             or IntervalSchedule.objects.create(**spec))  # fmt: skip
        else:
            task.clocked, _ = ClockedSchedule.objects.get_or_create(clocked_time=pattern.at)
        task.save()
        defaults = {**extra, "options": job_options or {}, "misfire": misfire, "anchor": now,
                    "last_tick": now, "last_error": ""}  # fmt: skip
        if config_digest is not None:
            defaults["config_digest"] = config_digest
        row, _ = JobSchedule.objects.update_or_create(periodic_task=task, defaults=defaults)
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


def first_due_after(task: Any, pattern: Pattern, now: datetime) -> datetime | None:
    """The pattern's first run after `now` that the row lets fire: not before its start
    time, and before its expiry date (None: none left)."""
    after = now
    if task.start_time and task.start_time > now:
        after = task.start_time - timedelta(microseconds=1)  # a run at start_time counts
    upcoming = pattern.next_after(after)
    if upcoming is not None and task.expires and upcoming >= task.expires:
        return None
    return upcoming


def _next(task: Any, pattern: Pattern, now: datetime) -> datetime | None:
    # A one-off that fired is disabled by the beat, as django-celery-beat disables it.
    if not task.enabled:
        return None
    return first_due_after(task, pattern, now)


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


def epoch_ms(moment: datetime | None) -> int | None:
    """A time as the registry and the API write every timestamp: epoch milliseconds."""
    return int(moment.timestamp() * 1000) if moment else None


def list_schedules(queue: str | None = None) -> list[dict[str, Any]]:
    """Every schedule (or those of one queue): key, jobType, queue, pattern, next, enabled.

    `next` and `lastRunAt` are epoch ms, as job timestamps are (the seeds show ms).

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
        task_queue = declared.queue if declared else queue_of(task)
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
                "next": epoch_ms(upcoming),
                "enabled": task.enabled,
                "lastRunAt": epoch_ms(task.last_run_at),
                "lastJobId": extra.last_job_id if extra else "",
                "lastError": error,
            }
        )
    return result
