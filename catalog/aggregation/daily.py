"""Aggregate one UTC day of the job archive into DailyJobStat rows, and the days a request
names (`daily`: yesterday; `range`: startDate to endDate)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

import tasks
from catalog.cleanup import cleanup_kind, delete_in_batches
from catalog.models import DailyJobStat

#: The longest range one job aggregates (a year, leap day included): each day is one query
#: over that day's archive rows, so a longer backfill is several jobs.
MAX_RANGE_DAYS = 366


class InvalidRange(ValueError):
    """A request for days that cannot be honoured; `field` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def yesterday(now: datetime | None = None) -> date:
    """The UTC day before `now` (default: now)."""
    return ((now or datetime.now(UTC)).astimezone(UTC) - timedelta(days=1)).date()


def check_range(start: date | None, end: date | None) -> None:
    """A `range` request: both dates, start <= end, at most MAX_RANGE_DAYS days."""
    if start is None:
        raise InvalidRange("startDate", "required when type is range")
    if end is None:
        raise InvalidRange("endDate", "required when type is range")
    if end < start:
        raise InvalidRange("endDate", f"must be on or after startDate ({start.isoformat()})")
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise InvalidRange(
            "endDate", f"the range is {days} days; at most {MAX_RANGE_DAYS} in one job"
        )


def days_to_aggregate(kind: str, start: date | None = None, end: date | None = None,
                      now: datetime | None = None) -> list[date]:  # fmt: skip
    """`daily`: [yesterday] (UTC); `range`: every day from start to end, both included."""
    if kind == "daily":
        if start is not None or end is not None:
            field = "startDate" if start is not None else "endDate"
            raise InvalidRange(field, "only with type range (daily aggregates yesterday)")
        return [yesterday(now)]
    if kind != "range":
        raise InvalidRange("type", "must be daily or range")
    check_range(start, end)
    assert start is not None and end is not None
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def aggregate_day(day: date) -> int:
    """Replace `day`'s rows with the archive's numbers for it; how many rows it wrote.

    One query reads the day (tasks.archive_daily_stats); the delete and the inserts are one
    transaction, so a reader sees the old rows or the new ones, and a re-run is idempotent.
    """
    stats = tasks.archive_daily_stats(day)
    rows = [
        DailyJobStat(
            day=day,
            queue=s["queue"],
            job_type=DailyJobStat.ALL_TYPES if s["job_type"] is None else s["job_type"],
            processed=s["processed"],
            failed=s["failed"],
            retried=s["retried"],
            processing_p50_ms=s["processing_p50_ms"],
            processing_p95_ms=s["processing_p95_ms"],
            wait_p50_ms=s["wait_p50_ms"],
            wait_p95_ms=s["wait_p95_ms"],
        )  # fmt: skip
        for s in stats
    ]
    with transaction.atomic():
        DailyJobStat.objects.filter(day=day).delete()
        DailyJobStat.objects.bulk_create(rows)
    return len(rows)


def aggregate_days(days: list[date],
                   on_day: Callable[[int, int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Aggregate each day (its own transaction: a crash keeps the days done, a re-run redoes
    them the same); `on_day(done, total)` after each."""
    rows = 0
    for n, day in enumerate(days, 1):
        rows += aggregate_day(day)
        if on_day:
            on_day(n, len(days))
    return {"days": len(days), "rows": rows,
            "startDate": days[0].isoformat() if days else None,
            "endDate": days[-1].isoformat() if days else None}  # fmt: skip


@cleanup_kind("daily-stats")
def expired_daily_stats(cutoff: datetime) -> int:
    """Days older than CATALOG_DAILY_STATS_RETENTION_DAYS (UTC), whatever `cutoff` says:
    `daysOld` (90 on the daily schedule) is about raw rows, and these are the year of
    numbers the archive's own cleanup leaves behind."""
    keep_from = datetime.now(UTC).date() - timedelta(
        days=settings.CATALOG_DAILY_STATS_RETENTION_DAYS
    )
    return delete_in_batches(DailyJobStat.objects.filter(day__lt=keep_from))
