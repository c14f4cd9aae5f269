"""`aggregate-daily`: a thin entry point over catalog/aggregation/daily.py.

Queue `reports`: it is a report (read-heavy SQL over the archive, a table of numbers out),
the kind the reports queue's workers are sized for (CPU and I/O, 2 at a time); `cleanup`'s
single slot is for deletions, and a year's backfill (366 queries) there would hold up the
archive's own cleanup for its whole run.

(No `from __future__ import annotations`: the schema is built from the annotations.)
"""

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from catalog.aggregation.daily import InvalidRange, aggregate_days, days_to_aggregate
from tasks import Job, default_schedule, job_type

#: The nightly run's schedule key: at 01:00 UTC it aggregates the day that just ended.
DAILY_SCHEDULE = "jobs-aggregate-daily"
DAILY_PATTERN = "0 1 * * *"


class AggregateDailyParams(BaseModel):
    """`daily` aggregates yesterday (UTC); `range` every day from startDate to endDate."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
    type: Literal["daily", "range"] = "daily"
    #: First day (UTC, YYYY-MM-DD) of a range; only with type range.
    start_date: date | None = None
    #: Last day of a range, included: on or after startDate, at most 366 days in all.
    end_date: date | None = None

    @model_validator(mode="after")
    def _check_range(self) -> "AggregateDailyParams":
        # The one check (catalog.aggregation.daily), its error named by the field at fault
        # as callers spell it (startDate): a ValidationError with that location passes
        # through pydantic as it is, where a plain error here would name the model's root.
        try:
            days_to_aggregate(self.type, self.start_date, self.end_date)
        except InvalidRange as exc:
            error = PydanticCustomError("invalid_range", "{reason}", {"reason": exc.message})
            raise ValidationError.from_exception_data(
                type(self).__name__, [{"type": error, "loc": (exc.field,), "input": None}]
            ) from None
        return self


@job_type("aggregate-daily", queue="reports", attempts=3, schema=AggregateDailyParams)
def aggregate_daily(job: Job, type: str, start_date: str | None,  # noqa: A002
                    end_date: str | None) -> dict[str, Any]:  # fmt: skip
    """Aggregate the job archive per day, queue and job type into DailyJobStat rows."""
    days = days_to_aggregate(
        type,
        date.fromisoformat(start_date) if start_date else None,
        date.fromisoformat(end_date) if end_date else None,
        # The day before the job was sent, not before it ran: a run held up past midnight
        # (workers down) still aggregates the day it was meant for.
        now=datetime.fromtimestamp(job.created_at / 1000, UTC) if job.created_at else None,
    )

    def on_day(done: int, total: int) -> None:
        job.update_progress(round(done * 100 / total))

    return {"type": type, **aggregate_days(days, on_day=on_day)}


default_schedule(DAILY_SCHEDULE, "aggregate-daily", {"type": "daily"}, cron=DAILY_PATTERN,
                 timezone="UTC")  # fmt: skip
