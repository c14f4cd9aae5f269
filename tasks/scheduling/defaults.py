"""Default schedules, declared next to their job types and installed idempotently.

`default_schedule(...)` in an app's jobs.py declares one; `python manage.py
setup_schedules` (run on every release) installs those that do not exist yet. An
installed schedule belongs to the operator from then on: installing again never
overwrites an edit, a disabling or a new pattern made in the admin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from tasks.scheduling.patterns import InvalidSchedule, parse_kind


@dataclass(frozen=True)
class DefaultSchedule:
    key: str
    job_type: str
    params: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every: str | None = None
    timezone: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


_DEFAULTS: dict[str, DefaultSchedule] = {}


def default_schedule(key: str, job_type: str, params: dict[str, Any] | None = None, *,
                     cron: str | None = None, every: str | None = None,
                     timezone: str | None = None, options: dict[str, Any] | None = None) -> None:  # fmt: skip
    if (cron is None) == (every is None):
        raise InvalidSchedule("pattern", f"default schedule {key!r}: give cron or every")
    # Checked where it is declared, as install_schedule would: a pattern that never fires
    # fails at start-up, not in the beat.
    now = datetime.now(UTC)
    kind, value = ("cron", cron) if cron is not None else ("every", every)
    try:
        parse_kind(kind, value, timezone or settings.TIME_ZONE, anchor=now, now=now)
    except InvalidSchedule as exc:
        raise InvalidSchedule(exc.field, f"default schedule {key!r}: {exc.reason}") from None
    _DEFAULTS[key] = DefaultSchedule(key, job_type, dict(params or {}), cron, every, timezone,
                                     dict(options or {}))  # fmt: skip


def default_schedules() -> list[DefaultSchedule]:
    return list(_DEFAULTS.values())


def install_default_schedules() -> tuple[list[str], list[str]]:
    """Create the declared schedules that do not exist yet; return (created, kept)."""
    from tasks.scheduling.service import install_schedule

    created, kept = [], []
    for d in _DEFAULTS.values():
        _, was_created = install_schedule(
            d.key, d.job_type, d.params, cron=d.cron, every=d.every, timezone_name=d.timezone,
            options=d.options, replace=False,
        )  # fmt: skip
        (created if was_created else kept).append(d.key)
    return created, kept
