"""The admin dashboard's "30 days" section (registered by catalog/apps.py): per queue, the
daily rows of the last 30 days as bar charts, history past the registry's 24 hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import tasks
from catalog.models import DailyJobStat

#: Days shown, ending with yesterday (UTC), the last day aggregate-daily has done.
DAYS = 30
P95_COLOR = "#1565c0"


def _epoch(day: date) -> int:
    return int(datetime.combine(day, time.min, tzinfo=UTC).timestamp())


def thirty_days(today: date | None = None) -> dict[str, Any]:
    """{"first", "last", "queues": [{name, days: [...], totals, throughput_chart,
    p95_chart}]}: each queue that has rows in the window (its whole-queue rows, job type
    `*`), a bucket per day, missing days as zero."""
    last = (today or datetime.now(UTC).date()) - timedelta(days=1)
    first = last - timedelta(days=DAYS - 1)
    rows = DailyJobStat.objects.filter(
        job_type=DailyJobStat.ALL_TYPES, day__gte=first, day__lte=last
    ).order_by("queue", "day")
    by_queue: dict[str, dict[date, DailyJobStat]] = {}
    for row in rows:
        by_queue.setdefault(row.queue, {})[row.day] = row
    queues = []
    for name, found in by_queue.items():
        days = []
        for n in range(DAYS):
            day = first + timedelta(days=n)
            row = found.get(day)
            days.append({
                "day": _epoch(day), "completed": row.processed if row else 0,
                "failed": row.failed if row else 0, "retried": row.retried if row else 0,
                "p95": row.processing_p95_ms if row else None,
                "p50": row.processing_p50_ms if row else None,
                "wait_p95": row.wait_p95_ms if row else None,
            })  # fmt: skip
        p95s = [d["p95"] for d in days if d["p95"] is not None]
        queues.append({
            "name": name,
            "days": days,
            "totals": {k: sum(d[k] for d in days) for k in ("completed", "failed", "retried")},
            "worst_p95": round(max(p95s)) if p95s else None,
            "throughput_chart": tasks.bar_chart(days, "day", "day", time_format="%d %b",
                                                end_label=last.strftime("%d %b")),
            "p95_chart": tasks.bar_chart(days, "day", "day", time_format="%d %b",
                                         end_label=last.strftime("%d %b"),
                                         bars=(("p95", P95_COLOR),),
                                         details=("p50", "p95", "wait_p95"), unit=" ms"),
        })  # fmt: skip
    return {"first": first, "last": last, "queues": queues}
