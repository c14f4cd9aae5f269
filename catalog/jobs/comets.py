"""Comet job types: thin entry points over catalog/cobs.py and catalog/cleanup.py.

(No `from __future__ import annotations`: the parameter schema is built from the
signature's annotations, pydantic constraints included, and wants them as objects.)
"""

from datetime import timedelta
from typing import Annotated, Any

from django.utils import timezone
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from catalog import cobs
from catalog.cleanup import CLEANUP_KINDS, cleanup
from tasks import (
    InvalidSchedule,
    Job,
    PermanentError,
    default_schedule,
    install_schedule,
    job_type,
    parse_pattern,
    split_pattern,
)

#: The weekly refresh's schedule key, installed by setup_schedules and by
#: `schedule-recurring-comets`.
COMETS_SCHEDULE = "comets-weekly"
COMETS_PATTERN = "0 0 * * 0"  # Sunday 00:00
COMETS_TIMEZONE = "UTC"

#: A comet's magnitude limit: 0 (brighter than any star but a few) up to 30 (deep surveys).
MaxMagnitude = Annotated[float, Field(ge=0, le=30, description="faintest current magnitude")]


# Attempts and back-off are the project's default policy (settings.JOBYARD
# DEFAULT_ATTEMPTS, DEFAULT_BACKOFF): 3 attempts, exponential 5 s, 25 s, 125 s.
@job_type("update-comets", queue="catalog", attempts=3)
def update_comets(job: Job, max_magnitude: MaxMagnitude = 15.0) -> dict[str, int]:
    """Refresh comets from every page of the COBS comet list, up to a magnitude."""

    def on_page(page: int, pages: int) -> None:
        job.update_progress(min(100, round(page * 100 / pages)) if pages else 100)

    try:
        return cobs.update_comets(max_magnitude, on_page=on_page)
    except cobs.CobsError as exc:
        if exc.permanent:
            raise PermanentError(str(exc)) from exc
        raise  # the retry policy decides


default_schedule(
    COMETS_SCHEDULE, "update-comets", {"maxMagnitude": 15.0}, cron=COMETS_PATTERN,
    timezone=COMETS_TIMEZONE,
)  # fmt: skip


class ScheduleRecurringCometsParams(BaseModel):
    """`schedule-recurring-comets`: (re)install the weekly comet refresh with a pattern."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
    #: A cron pattern (5 fields, or 6 with seconds first), `every 6h`, or `at <ISO time>`.
    pattern: str = COMETS_PATTERN
    max_magnitude: MaxMagnitude = 15.0

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        # The check install_schedule makes, here so that the trigger refuses it (422).
        try:
            parse_pattern(value, COMETS_TIMEZONE, anchor=timezone.now())
        except InvalidSchedule as exc:
            raise PydanticCustomError(
                "invalid_schedule", "{reason}", {"reason": exc.reason}
            ) from None
        return value


@job_type(
    "schedule-recurring-comets", queue="default", attempts=1, schema=ScheduleRecurringCometsParams
)
def schedule_recurring_comets(job: Job, pattern: str, max_magnitude: float) -> dict[str, Any]:
    """Install or replace the comets-weekly schedule of update-comets."""
    try:
        _, created = install_schedule(
            COMETS_SCHEDULE, "update-comets", {"max_magnitude": max_magnitude},
            timezone_name=COMETS_TIMEZONE, **split_pattern(pattern),
        )  # fmt: skip
    except InvalidSchedule as exc:
        raise PermanentError(str(exc)) from exc
    return {"key": COMETS_SCHEDULE, "created": created, "pattern": pattern,
            "maxMagnitude": max_magnitude}  # fmt: skip


def _known_kind(value: str) -> str:
    if value != "all" and value not in CLEANUP_KINDS:
        kinds = ", ".join(["all", *sorted(CLEANUP_KINDS)])
        raise PydanticCustomError("unknown_kind", "unknown kind '{value}'; kinds: {kinds}",
                                  {"value": value, "kinds": kinds})  # fmt: skip
    return value


@job_type("cleanup-old-data", queue="cleanup", attempts=3)
def cleanup_old_data(
    job: Job,
    days_old: Annotated[int, Field(ge=0, description="keep what was seen this recently")] = 90,
    type: Annotated[str, AfterValidator(_known_kind), Field(description="a kind, or all")] = "all",  # noqa: A002
) -> dict[str, Any]:
    """Delete stale catalog data (comets no longer active nor seen for daysOld days)."""
    cutoff = timezone.now() - timedelta(days=days_old)
    kinds = sorted(CLEANUP_KINDS) if type == "all" else [type]
    return {"deleted": cleanup(cutoff, kinds), "daysOld": days_old, "cutoff": cutoff.isoformat()}


default_schedule(
    "catalog-cleanup-daily", "cleanup-old-data", {"daysOld": 90, "type": "all"},
    cron="15 4 * * *", timezone="UTC",
)  # fmt: skip
