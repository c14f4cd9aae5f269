"""`aggregate-daily`: a thin entry point over catalog/aggregation/daily.py.

Queue `reports`: it is a report (read-heavy SQL over the archive, a table of numbers out),
the kind the reports queue's workers are sized for (CPU and I/O, 2 at a time); `cleanup`'s
single slot is for deletions, and a year's backfill (366 queries) there would hold up the
archive's own cleanup for its whole run.

(No `from __future__ import annotations`: the schema is built from the annotations.)
"""

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from catalog.aggregation.daily import InvalidRange, aggregate_days, days_to_aggregate
from tasks import Job, default_schedule, job_type

#: The nightly run's schedule key: at 01:00 UTC it aggregates the day that just ended.
DAILY_SCHEDULE = "jobs-aggregate-daily"
DAILY_PATTERN = "0 1 * * *"


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_range", "{reason}", {"reason": message})


class AggregateDailyParams(BaseModel):
    """`daily` aggregates yesterday (UTC); `range` every day from startDate to endDate."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
    type: Literal["daily", "range"] = "daily"
    #: First day (UTC, YYYY-MM-DD) of a range; only with type range.
    start_date: date | None = Field(None, validate_default=True)
    #: Last day of a range, included: on or after startDate, at most 366 days in all.
    end_date: date | None = Field(None, validate_default=True)

    # Each check on its own field, so that the error names the field at fault (422 `fields`
    # from the trigger API, the CLI's message, the admin form's error).
    @field_validator("start_date")
    @classmethod
    def _check_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        kind = info.data.get("type")
        if kind == "range" and value is None:
            raise _invalid("required when type is range")
        if kind == "daily" and value is not None:
            raise _invalid("only with type range (daily aggregates yesterday)")
        return value

    @field_validator("end_date")
    @classmethod
    def _check_end(cls, value: date | None, info: ValidationInfo) -> date | None:
        kind = info.data.get("type")
        if kind is None or "start_date" not in info.data:
            return value  # type or startDate is refused already
        try:
            days_to_aggregate(kind, info.data["start_date"], value)
        except InvalidRange as exc:
            if exc.field == "endDate":
                raise _invalid(exc.message) from None
        return value


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
