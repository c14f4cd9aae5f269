"""Enqueue options, validated once, in Python snake_case or the HTTP API's camelCase.

Types are strict, as JSON writes them: a string ("10") is not a number, nor is a boolean
(true), a string ("yes") is not a boolean, and a count is an integer (not 10.5); a float
field (backoff.factor) takes an integer too. The Python API, the HTTP API, the CLI and the
admin all pass through here alike, and so do stored options read back (JSON keeps the types).
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tasks.errors import InvalidJobOptions

#: Job ids and job type names go into Redis keys and Celery messages unescaped.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
#: Priority 1 is the highest, 10 the lowest; a job without one runs as NORMAL_PRIORITY.
HIGHEST_PRIORITY, LOWEST_PRIORITY, NORMAL_PRIORITY = 1, 10, 5
MAX_DELAY_MS = 10 * 365 * 24 * 3600 * 1000


class _Options(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, strict=True
    )


class Backoff(_Options):
    type: Literal["fixed", "exponential"] = "exponential"
    delay: int = Field(default=5000, ge=0, le=MAX_DELAY_MS)
    factor: float = Field(default=2.0, ge=1.0, le=100.0)
    jitter: float = Field(default=0.0, ge=0.0, le=1.0)

    def delay_for(self, attempt: int, scale: float = 1.0, rand=random.random) -> int:
        """Milliseconds to wait after failed attempt number `attempt` (1-based)."""
        wait = self.delay if self.type == "fixed" else self.delay * self.factor ** (attempt - 1)
        # Jitter spreads retries after an outage instead of sending them all at once.
        wait *= 1 - self.jitter * rand()
        return min(round(wait * scale), MAX_DELAY_MS)


class Retention(_Options):
    age: int | None = Field(default=None, ge=1, description="seconds")
    count: int | None = Field(default=None, ge=0)


class Dedupe(_Options):
    """BullMQ's simple deduplication: within `ttl` ms of the job that set `key`, an enqueue
    with the same key returns that job (whatever its state) and creates nothing."""

    key: str = Field(min_length=1, max_length=200)
    ttl: int = Field(ge=1, le=MAX_DELAY_MS, description="milliseconds")


class Debounce(_Options):
    """BullMQ's debounce (replace + extend): the job waits `delay` ms; an enqueue with the
    same key while it still waits replaces its data and options and restarts the delay."""

    key: str = Field(min_length=1, max_length=200)
    delay: int = Field(ge=1, le=MAX_DELAY_MS, description="milliseconds")


#: true removes at once, false keeps all, a number keeps that many, {age, count} both.
RemoveOption = bool | int | Retention


class JobOptions(_Options):
    delay: int = Field(default=0, ge=0, le=MAX_DELAY_MS, description="milliseconds")
    priority: int | None = Field(default=None, ge=HIGHEST_PRIORITY, le=LOWEST_PRIORITY)
    job_id: str | None = Field(default=None, pattern=ID_PATTERN)
    attempts: int | None = Field(default=None, ge=1, le=1000)
    backoff: Backoff | None = None
    timeout: int | None = Field(default=None, ge=1, le=7 * 24 * 3600 * 1000, description="ms")
    remove_on_complete: RemoveOption | None = None
    remove_on_fail: RemoveOption | None = None
    lifo: bool | None = Field(
        default=None,
        description="true: to the front of its queue (the next job of its priority to run)",
    )
    #: Set by the beat: the key of the schedule whose run this job is.
    schedule: str | None = Field(default=None, min_length=1, max_length=200)
    #: Served round robin with the queue's other groups, within the group's limits.
    group: str | None = Field(default=None, pattern=ID_PATTERN)
    dedupe: Dedupe | None = None
    debounce: Debounce | None = None

    @model_validator(mode="after")
    def _debounce_alone(self) -> JobOptions:
        # A debounced job's id is made per window and its delay is the debounce's.
        if self.debounce is not None:
            clash = [n for n in ("dedupe", "job_id") if getattr(self, n) is not None]
            if self.delay:
                clash.append("delay")
            if clash:
                raise ValueError(f"debounce cannot be combined with {', '.join(clash)}")
        return self

    @field_validator("remove_on_complete", "remove_on_fail")
    @classmethod
    def _non_negative(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ValueError("must be true, false, a count >= 0 or {age, count}")
        return value

    def merged_over(self, defaults: JobOptions) -> JobOptions:
        """These options, with the job type's declared defaults where these are unset."""
        mine = self.model_dump(exclude_unset=True)
        return JobOptions.model_validate({**defaults.model_dump(exclude_unset=True), **mine})

    def priority_step(self) -> int:
        """kombu's priority list for this job: 0 is polled first."""
        return (self.priority or NORMAL_PRIORITY) - 1

    def timelimit(self) -> str:
        """Celery's per-message [hard, soft] time limit in seconds, as JSON."""
        if not self.timeout:
            return "[null, null]"
        soft = self.timeout / 1000
        # The soft limit raises inside the job; the hard one ends a job that ignores it.
        return json.dumps([soft + max(5.0, soft * 0.1), soft])

    def retention(self, completed: bool, queue_default: int) -> tuple[int, int]:
        """(count to keep, -1 for all; max age in ms, 0 for none)."""
        value = self.remove_on_complete if completed else self.remove_on_fail
        if value is None:
            return queue_default, 0
        if isinstance(value, bool):
            return (0, 0) if value else (-1, 0)
        if isinstance(value, int):
            return value, 0
        keep = -1 if value.count is None else value.count
        return keep, (value.age or 0) * 1000


class GroupLimits(_Options):
    """A group's limits (or the queue's default for its groups); None: not set."""

    concurrency: int | None = Field(default=None, ge=0, le=100_000)
    #: (max jobs started, per window ms); max 0 means no rate limit.
    rate_limit: tuple[int, int] | None = None

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and (
            not 0 <= value[0] <= 1_000_000 or not 1 <= value[1] <= MAX_DELAY_MS
        ):
            raise ValueError("must be [max, ms]: max 0..1000000 jobs per ms 1..")
        return value


_GROUP = re.compile(ID_PATTERN)


def check_group(group: Any) -> str:
    """A group name as jobs carry it (the `group` option's rule), or InvalidJobOptions."""
    if not isinstance(group, str) or not _GROUP.match(group):
        raise InvalidJobOptions([{"field": "group", "message": f"must match {ID_PATTERN}"}])
    return group


def parse_options(raw: dict[str, Any]) -> JobOptions:
    try:
        return JobOptions.model_validate(raw)
    except ValidationError as exc:
        raise InvalidJobOptions(validation_errors(exc)) from None


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(part) for part in error["loc"]) or "(root)", "message": error["msg"]}
        for error in exc.errors()
    ]


def shown(opts: JobOptions) -> dict[str, Any]:
    """A job's options as the API, the archive and the job itself show them."""
    return opts.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"job_id"})


def stored(opts: JobOptions) -> dict[str, Any]:
    """What a job's hash keeps of its options: those that differ from the fields' defaults
    (`expanded` puts them back). Kept short so that the hash stays under Redis's
    hash-max-listpack-value (64 bytes by default): one value longer turns the whole hash into
    a hashtable, about 600 bytes more per job (docs/architecture.md, "Lean messages")."""
    return opts.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude={"job_id"})


def expanded(raw: str) -> dict[str, Any]:
    """A hash's stored options as `shown` gives them; `{}` (a plain Celery task's) stays."""
    if raw in ("", "{}"):
        return {}
    return shown(JobOptions.model_validate_json(raw))
