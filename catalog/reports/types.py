"""Report types: each one's parameters (a pydantic model), columns, and rows, streamed.

A type's rows come from a queryset read with `.iterator(chunk_size=...)` (a server-side
cursor), or from `tasks.archive_rows` which reads the same way, so memory stays flat
however many rows a report has. `count` is cheap (one COUNT) and drives progress.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

import tasks
from catalog.models import Comet

#: Rows fetched per round trip: big enough to be cheap, small enough to stay flat.
CHUNK_ROWS = 2000


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class CometCatalogParams(Params):
    #: Comets with a known current magnitude at most this (fainter ones are left out).
    max_magnitude: float | None = Field(None, ge=-30, le=40)
    active: bool | None = None
    #: COBS's type letter: P, C, I, A, M, N, D.
    type: str | None = Field(None, min_length=1, max_length=2)


class JobActivityParams(Params):
    #: The range of job creation dates, both days included (UTC).
    start: date
    end: date
    queue: str | None = None
    job_type: str | None = None
    #: One row per archived job, instead of one per queue and job type.
    detail: bool = False

    @model_validator(mode="after")
    def _end_not_before_start(self) -> JobActivityParams:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self


@dataclass(frozen=True)
class ReportType:
    name: str
    title: str
    params: type[Params]
    columns: list[str]
    rows: Callable[[Any], Iterator[list[Any]]]
    #: How many rows the report will have, when one query can tell (progress in percent);
    #: None when not (progress then counts the rows written).
    count: Callable[[Any], int | None]


def _comets(p: CometCatalogParams):
    comets = Comet.objects.all()
    if p.max_magnitude is not None:
        comets = comets.filter(current_magnitude__lte=p.max_magnitude)
    if p.active is not None:
        comets = comets.filter(is_active=p.active)
    if p.type is not None:
        comets = comets.filter(type=p.type)
    return comets


COMET_COLUMNS = ["name", "fullname", "type", "current_magnitude", "perihelion_date",
                 "peak_magnitude", "peak_date", "is_active", "is_observed", "last_seen"]  # fmt: skip


def comet_rows(p: CometCatalogParams) -> Iterator[list[Any]]:
    rows = _comets(p).order_by("current_magnitude", "name").values_list(*COMET_COLUMNS)
    for row in rows.iterator(chunk_size=CHUNK_ROWS):
        yield list(row)


def _range(p: JobActivityParams) -> dict[str, Any]:
    since = datetime.combine(p.start, time.min, tzinfo=UTC)
    until = datetime.combine(p.end + timedelta(days=1), time.min, tzinfo=UTC)
    return {"since": since, "until": until, "queues": [p.queue] if p.queue else None,
            "names": [p.job_type] if p.job_type else None}  # fmt: skip


DETAIL_COLUMNS = ["queue", "job_id", "job_type", "state", "attempts", "created_at",
                  "started_at", "finished_at", "duration_ms"]  # fmt: skip
SUMMARY_COLUMNS = ["queue", "job_type", "jobs", "completed", "failed", "other",
                   "mean_duration_ms", "max_duration_ms", "first_created_at", "last_created_at"]  # fmt: skip


def _duration_ms(job: dict[str, Any]) -> int | None:
    if job["processed_on"] and job["finished_on"]:
        return round((job["finished_on"] - job["processed_on"]).total_seconds() * 1000)
    return None


def activity_rows(p: JobActivityParams) -> Iterator[list[Any]]:
    jobs = tasks.archive_rows(**_range(p), chunk_size=CHUNK_ROWS)
    if p.detail:
        for job in jobs:
            yield [job["queue"], job["job_id"], job["name"], job["state"], job["attempts_made"],
                   job["created_at"], job["processed_on"], job["finished_on"], _duration_ms(job)]  # fmt: skip
        return
    # One small dict per (queue, job type): memory grows with the kinds, not the jobs.
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for job in jobs:
        g = groups.setdefault((job["queue"], job["name"]), {"jobs": 0, "completed": 0,
                              "failed": 0, "timed": 0, "total_ms": 0, "max_ms": None,
                              "first": job["created_at"], "last": job["created_at"]})  # fmt: skip
        g["jobs"] += 1
        if job["state"] in ("completed", "failed"):
            g[job["state"]] += 1
        ms = _duration_ms(job)
        if ms is not None:
            g["timed"] += 1
            g["total_ms"] += ms
            g["max_ms"] = ms if g["max_ms"] is None else max(g["max_ms"], ms)
        g["last"] = job["created_at"]
    for (queue, name), g in sorted(groups.items()):
        mean = round(g["total_ms"] / g["timed"]) if g["timed"] else None
        yield [queue, name, g["jobs"], g["completed"], g["failed"],
               g["jobs"] - g["completed"] - g["failed"], mean, g["max_ms"], g["first"], g["last"]]  # fmt: skip


REPORT_TYPES: dict[str, ReportType] = {
    "comet-catalog": ReportType("comet-catalog", "Comet catalog", CometCatalogParams,
                                COMET_COLUMNS, comet_rows, lambda p: _comets(p).count()),
    "job-activity": ReportType("job-activity", "Job activity", JobActivityParams,
                               SUMMARY_COLUMNS, activity_rows, lambda p: None),
}  # fmt: skip


def columns(report_type: ReportType, params: Params) -> list[str]:
    if isinstance(params, JobActivityParams) and params.detail:
        return DETAIL_COLUMNS
    return report_type.columns


class BadParams(ValueError):
    """Parameters a report type refuses; `field` is the first one named (`params.end`)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        self.field = problems[0][0]
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))


def parse_params(report_type: str, params: dict[str, Any]) -> Params:
    """The type's parameters, or BadParams naming each bad field as `params.<name>`."""
    model = REPORT_TYPES[report_type].params
    try:
        return model.model_validate_json(json.dumps(params), strict=True)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if not loc and model is JobActivityParams:
                loc = "end"  # the range check: the end is what is wrong with it
            problems.append((f"params.{loc}" if loc else "params", message))
        raise BadParams(problems) from None
