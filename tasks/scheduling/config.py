"""CELERY_BEAT_SCHEDULE (`app.conf.beat_schedule`) installed as database schedules.

Jobyard's beat fires what is in the database, so an entry of the setting is installed there
(by `manage.py setup_schedules` and by the beat when it starts leading) or refused with
its reason (the beat does not start, setup_schedules exits with an error): never ignored.

Celery's documented entry forms are read:

    {"task": name, "schedule": 30 | timedelta | schedule(run_every) | crontab(...),
     "args": [...], "kwargs": {...},
     "options": {"queue", "exchange", "routing_key", "priority", "expires", "headers"}}

An entry whose task is a Jobyard job type becomes a normal Jobyard schedule (its kwargs are
the job's parameters, checked against the job type's schema; its options may also carry
Jobyard job options: attempts, backoff, timeout, removeOnComplete, ...); any other
registered Celery task becomes a PeriodicTask that fires that task the Celery way. Refused,
naming the entry and the field: solar schedules, a schedule under 100 ms, `relative=True`,
an option the beat cannot honour (countdown, eta, link, ...), a queue outside
JOBYARD_QUEUES, a priority outside 0..9, a task neither a job type nor registered.

Installing is idempotent: an entry is created once; installed again unchanged, it is left
as it is (an edit made in the admin stays); changed in the settings, it is installed again
(the settings win over the earlier edit). An entry removed from the settings leaves its
schedule in the database, as django-celery-beat does; delete it in the admin.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from tasks.errors import JobyardError
from tasks.options import JobOptions, parse_options
from tasks.scheduling.patterns import InvalidSchedule, Pattern, parse_cron, parse_every
from tasks.scheduling.service import check_priority, store_schedule, target_of

#: Entry keys Celery documents; `relative` is accepted only false.
ENTRY_KEYS = {"task", "schedule", "args", "kwargs", "options", "relative"}
#: apply_async options a PeriodicTask has a field for.
CELERY_OPTIONS = {"queue", "exchange", "routing_key", "priority", "expires", "headers"}
#: Jobyard job options an entry of a job type may carry as well (snake_case or camelCase).
JOB_OPTIONS = {
    name
    for key, info in JobOptions.model_fields.items()
    if key not in {"priority", "job_id", "schedule"}
    for name in (key, info.alias or key)
}


@dataclass(frozen=True)
class BeatEntry:
    """One CELERY_BEAT_SCHEDULE entry, checked and ready to install."""

    key: str
    task: str
    pattern: Pattern
    args: list[Any]
    kwargs: dict[str, Any]
    execution: dict[str, Any]
    job_options: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """The entry as installed; a change of any of it installs it again."""
        text = json.dumps(
            [self.task, str(self.pattern), getattr(self.pattern, "tz", None), self.args,
             self.kwargs, self.execution, self.job_options],
            sort_keys=True, default=str,
        )  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()


def _crontab_field(value: Any) -> str:
    """A celery crontab field as given (`*/15`, 5, {1, 2}, range(0, 10)) as cron text."""
    if isinstance(value, str):
        return value.replace(" ", "") or "*"
    if isinstance(value, numbers.Integral):
        return str(value)
    try:
        return ",".join(str(v) for v in sorted(value))
    except TypeError:
        raise InvalidSchedule("schedule", f"cannot read crontab field {value!r}") from None


def _pattern(entry: Mapping[str, Any], now: datetime) -> Pattern:
    from celery.schedules import crontab, schedule, solar

    value = entry.get("schedule")
    if entry.get("relative"):
        raise InvalidSchedule("relative", "relative=True is not supported: leave it out")
    if isinstance(value, solar):
        raise InvalidSchedule("schedule", "solar schedules are not supported; use a crontab")
    if isinstance(value, crontab):
        fields = " ".join(
            _crontab_field(getattr(value, f"_orig_{name}"))
            for name in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
        )
        tz = str(value.tz or settings.CELERY_TIMEZONE)
        pattern = parse_cron(fields, tz)
    else:
        if isinstance(value, schedule):
            value = value.run_every
        if isinstance(value, timedelta):
            seconds = value.total_seconds()
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            seconds = float(value)
        else:
            raise InvalidSchedule(
                "schedule",
                f"{value!r} is not a schedule: give seconds, a timedelta, celery.schedules."
                "schedule or crontab",
            )
        pattern = parse_every(round(seconds * 1000), now)
    try:
        if pattern.next_after(now) is None:
            raise OverflowError
    except OverflowError:
        raise InvalidSchedule("schedule", f"{pattern} never fires") from None
    return pattern


def _execution(options: Mapping[str, Any]) -> dict[str, Any]:
    """The PeriodicTask fields of an entry's Celery options."""
    execution: dict[str, Any] = {
        name: options.get(name) for name in ("queue", "exchange", "routing_key", "priority")
    }
    if execution["priority"] is not None:
        if isinstance(execution["priority"], bool) or not isinstance(
            execution["priority"], numbers.Integral
        ):
            raise InvalidSchedule("options.priority", "must be an integer 0..9")
        check_priority(execution["priority"])
    expires = options.get("expires")
    if isinstance(expires, datetime):
        if timezone.is_naive(expires):
            raise InvalidSchedule("options.expires", "a date needs a time zone")
        execution["expires"] = expires  # the schedule ends then (and its messages with it)
    elif isinstance(expires, numbers.Real) and not isinstance(expires, bool):
        if expires <= 0 or expires != int(expires):
            raise InvalidSchedule("options.expires", "seconds: a whole number above 0")
        execution["expire_seconds"] = int(expires)  # each message expires this long after
    elif expires is not None:
        raise InvalidSchedule("options.expires", "seconds, or an aware datetime")
    headers = options.get("headers") or {}
    if not isinstance(headers, dict):
        raise InvalidSchedule("options.headers", "must be a dict")
    execution["headers"] = headers
    return execution


def read_entry(key: str, entry: Any, now: datetime | None = None) -> BeatEntry:
    """One entry, checked as the admin form checks a schedule; InvalidSchedule otherwise."""
    now = now or timezone.now()
    if not isinstance(entry, Mapping):
        raise InvalidSchedule("entry", "must be a dict with task and schedule")
    if not key or len(str(key)) > 200:
        raise InvalidSchedule("name", "a schedule name has 1 to 200 characters")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise InvalidSchedule(
            unknown[0], f"unknown entry key; known: {', '.join(sorted(ENTRY_KEYS))}"
        )
    task = entry.get("task")
    if not isinstance(task, str) or not task:
        raise InvalidSchedule("task", "the name of a task is required")
    args = list(entry.get("args") or ())
    kwargs = dict(entry.get("kwargs") or {})
    options = dict(entry.get("options") or {})
    try:
        json.dumps([args, kwargs], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidSchedule("args" if args else "kwargs", f"not JSON: {exc}") from None
    pattern = _pattern(entry, now)
    job_options = {k: v for k, v in options.items() if k in JOB_OPTIONS}
    others = sorted(set(options) - CELERY_OPTIONS - JOB_OPTIONS)
    if others:
        raise InvalidSchedule(
            f"options.{others[0]}",
            f"not supported in a beat entry; supported: {', '.join(sorted(CELERY_OPTIONS))}, "
            "and for a job type its job options (attempts, backoff, timeout, ...)",
        )
    execution = _execution(options)
    if job_options:
        parse_options(job_options)  # InvalidJobOptions names the option
    row = SimpleNamespace(name=str(key), task=task, args=args, kwargs=kwargs,
                          **{**dict.fromkeys(("expires", "expire_seconds")), **execution})  # fmt: skip
    target = target_of(row)  # job options never hold the priority: no contradiction
    if target.declared is not None:
        target.declared.validate(kwargs)
    elif job_options:
        raise InvalidSchedule(f"options.{sorted(job_options)[0]}", "a Jobyard job option; "
                              f"{task!r} is a plain Celery task")  # fmt: skip
    return BeatEntry(str(key), task, pattern, args, kwargs, execution, job_options)


def read_beat_schedule(schedule: Mapping[str, Any] | None = None) -> list[BeatEntry]:
    """Every entry of `schedule` (the Celery app's beat_schedule by default), checked.

    ImproperlyConfigured names every entry refused and why.
    """
    if schedule is None:
        from celery import current_app

        schedule = current_app.conf.beat_schedule or {}
    entries, problems = [], []
    for key, entry in schedule.items():
        try:
            entries.append(read_entry(key, entry))
        except (JobyardError, ValueError) as exc:
            problems.append(f"{key!r}: {exc}")
    if problems:
        raise ImproperlyConfigured(
            "CELERY_BEAT_SCHEDULE refused (docs/schedules.md): " + "; ".join(problems)
        )
    return entries


def install_beat_schedule(
    entries: list[BeatEntry] | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """Install the entries (all of CELERY_BEAT_SCHEDULE by default); (created, updated, kept)."""
    from django_celery_beat.models import PeriodicTask

    from tasks.scheduling.models import JobSchedule

    if entries is None:
        entries = read_beat_schedule()
    created: list[str] = []
    updated: list[str] = []
    kept: list[str] = []
    for entry in entries:
        digest = entry.digest
        with transaction.atomic():
            existing = PeriodicTask.objects.select_for_update().filter(name=entry.key).first()
            installed = (
                JobSchedule.objects.filter(periodic_task=existing).first() if existing else None
            )
            if installed is not None and installed.config_digest == digest:
                kept.append(entry.key)
                continue
            store_schedule(
                entry.key, entry.task, entry.pattern, args=entry.args, kwargs=entry.kwargs,
                job_options=entry.job_options, execution=entry.execution, config_digest=digest,
            )  # fmt: skip
        (updated if existing else created).append(entry.key)
    return created, updated, kept
