"""Schedules as the operator surfaces see them: key, job type, pattern, next run.

The store is django-celery-beat's PeriodicTask (edited in the admin); a schedule's key is
the PeriodicTask's name and its job type is the task name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone


def _pattern(task: Any) -> str:
    if task.crontab_id:
        c = task.crontab
        return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"
    if task.interval_id:
        return f"every {task.interval.every} {task.interval.period}"
    if task.clocked_id:
        return f"once at {task.clocked.clocked_time.isoformat()}"
    if task.solar_id:
        return f"solar {task.solar.event}"
    return ""


def next_run(task: Any, now: datetime | None = None) -> datetime | None:
    """When the schedule fires next, or None (disabled, or a one-off already run)."""
    if not task.enabled or (task.one_off and task.total_run_count):
        return None
    now = now or timezone.now()
    if task.clocked_id:
        return task.clocked.clocked_time
    schedule = task.schedule
    last = task.last_run_at or task.start_time or now
    if hasattr(schedule, "remaining_delta"):  # crontab: the exact next matching time
        start, delta, _ = schedule.remaining_delta(last)
        return start + delta
    return last + schedule.run_every


def list_schedules(queue: str | None = None) -> list[dict[str, Any]]:
    """Every schedule (or those of one queue): key, jobType, queue, pattern, next, enabled."""
    from django_celery_beat.models import PeriodicTask

    from tasks.registry import job_types

    known = job_types()
    rows = PeriodicTask.objects.select_related("crontab", "interval", "clocked", "solar")
    result = []
    for task in rows.order_by("name"):
        declared = known.get(task.task)
        task_queue = task.queue or (declared.queue if declared else None)
        if queue is not None and task_queue != queue:
            continue
        upcoming = next_run(task)
        result.append(
            {
                "key": task.name,
                "jobType": task.task,
                "queue": task_queue,
                "pattern": _pattern(task),
                "next": upcoming.isoformat() if upcoming else None,
                "enabled": task.enabled,
            }
        )
    return result
