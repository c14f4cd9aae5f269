"""Default schedules, declared next to their job types and installed idempotently.

An installed schedule belongs to the operator from then on: installing again creates only
the missing ones and never overwrites an edit made in the admin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from tasks.registry import get_job_type


@dataclass(frozen=True)
class DefaultSchedule:
    key: str
    job_type: str
    cron: str  # five fields: minute hour day-of-month month day-of-week
    params: dict[str, Any] = field(default_factory=dict)


_DEFAULTS: dict[str, DefaultSchedule] = {}


def default_schedule(
    key: str, job_type: str, cron: str, params: dict[str, Any] | None = None
) -> None:
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"schedule {key!r}: cron {cron!r} must have 5 fields, has {len(fields)}")
    _DEFAULTS[key] = DefaultSchedule(key, job_type, cron, dict(params or {}))


def default_schedules() -> list[DefaultSchedule]:
    return list(_DEFAULTS.values())


def install_default_schedules() -> tuple[list[str], list[str]]:
    """Create the declared schedules that do not exist yet; return (created, kept)."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    created, kept = [], []
    for schedule in _DEFAULTS.values():
        declared = get_job_type(schedule.job_type)
        with transaction.atomic():
            if PeriodicTask.objects.filter(name=schedule.key).exists():
                kept.append(schedule.key)
                continue
            minute, hour, day_of_month, month_of_year, day_of_week = schedule.cron.split()
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=minute, hour=hour, day_of_month=day_of_month,
                month_of_year=month_of_year, day_of_week=day_of_week,
                timezone=settings.TIME_ZONE,
            )  # fmt: skip
            PeriodicTask.objects.create(
                name=schedule.key, task=declared.name, crontab=crontab, queue=declared.queue,
                kwargs=json.dumps(schedule.params),
            )  # fmt: skip
            created.append(schedule.key)
    return created, kept
