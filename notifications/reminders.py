"""Reminders: when the next occurrence is (in the reminder's own time zone), scheduling it
as a durable delayed job, and firing it exactly once.

The gate is the occurrence: each occurrence has its own job, `reminder-{pk}-{epoch s}`
(enqueue creates nothing for an id that exists), and that job sends only if the row, locked,
still has `next_fire_at` equal to its occurrence. Firing moves `next_fire_at` on in the
same transaction that writes the Messages, so a second run of the job finds it moved; a
reschedule moves it too, so the old job finds another time and does nothing. (The row's
`version` is recorded in each job's data, but it is not the gate: rescheduled from A to B
and back to A, the A job that is still delayed is the one enqueue returns, and it must
fire. Comparing occurrences lets it; comparing versions would lose that reminder.)

Daylight saving time: occurrences are local wall-clock times. A time that occurs twice
(fall-back) fires at its first instance; a time that does not exist that day (spring-
forward: 2:30 in Berlin on the last Sunday of March) fires when the clocks jump, at the
first local time that does exist (3:00).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.db import transaction
from django.utils import timezone

import tasks
from notifications.models import Reminder
from notifications.notify import notify

#: The job that fires one occurrence (notifications/jobs/reminders.py).
JOB_TYPE = "fire-reminder"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone, or ValueError naming `timeZone`."""
    try:
        if not isinstance(name, str) or not name or name not in _zone_names():
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name: Europe/Berlin)") from None


def _zone_names() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones() | {"UTC"}
    return _ZONES


_ZONES: set[str] | None = None


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `at` on `day` in `tz`: the first of two (fall-back),
    or the moment the clocks jump past it when it does not exist (spring-forward)."""
    wall = datetime.combine(day, at.replace(tzinfo=None))
    first = wall.replace(tzinfo=tz, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant  # it exists (fold=0 is the earlier of two)
    # In a gap: fold=1 reads it with the offset after the jump (an earlier instant), fold=0
    # with the one before (a later one); the jump is between. Bisect to the second.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = instant
    after = high.astimezone(tz).utcoffset()
    while (high - low) > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def step_days(repeat: str, interval: int) -> int | None:
    if repeat == Reminder.NONE:
        return None
    return max(1, interval) * (7 if repeat == Reminder.WEEKLY else 1)


def next_occurrence(start: date, at: time, time_zone: str, repeat: str, interval: int,
                    after: datetime) -> datetime | None:  # fmt: skip
    """The first occurrence strictly after `after` (aware), in UTC; None when none is left
    (a one-off already past)."""
    tz = zone(time_zone)
    step = step_days(repeat, interval)
    if step is None:
        instant = local_instant(start, at, tz)
        return instant if instant > after else None
    # Start a step before the local day of `after`: a day's instant may fall either side.
    behind = (after.astimezone(tz).date() - start).days
    k = max(0, math.floor(behind / step) - 1)
    while True:
        instant = local_instant(start + timedelta(days=k * step), at, tz)
        if instant > after:
            return instant
        k += 1


def occurrence_key(instant: datetime) -> int:
    return int(instant.timestamp())


def job_id(reminder: Reminder, instant: datetime) -> str:
    return f"reminder-{reminder.pk}-{occurrence_key(instant)}"


def check(reminder: Reminder) -> list[dict[str, str]]:
    """What is wrong with a reminder, as [{field, message}] (camelCase, as the API names
    them): its zone, channels, recipient on each channel, template and context."""
    from notifications.channels import channel as get_channel
    from notifications.notify import UnknownTemplate, render

    errors = []
    try:
        zone(reminder.time_zone)
    except ValueError as exc:
        errors.append({"field": "timeZone", "message": str(exc)})
    if reminder.repeat not in dict(Reminder.REPEATS):
        errors.append({"field": "repeat", "message": "one of none, daily, weekly"})
    if not isinstance(reminder.interval, int) or not 1 <= reminder.interval <= 366:
        errors.append({"field": "interval", "message": "an integer from 1 to 366"})
    if not (reminder.user_id or reminder.recipient):
        errors.append({"field": "recipient", "message": "a user or a recipient is needed"})
    channels = reminder.channels
    if (
        not isinstance(channels, list)
        or not channels
        or not all(isinstance(c, str) for c in channels)
    ):
        return [*errors, {"field": "channels", "message": "a non-empty list of channel names"}]
    who = reminder.user if reminder.user_id else reminder.recipient
    for name in channels:
        try:
            module = get_channel(name)
        except ValueError as exc:
            errors.append({"field": "channels", "message": str(exc).removeprefix("channels: ")})
            continue
        try:
            module.recipient_for(who)
        except ValueError as exc:
            errors.append({"field": "userId" if reminder.user_id else "recipient",
                           "message": f"{name}: {exc}"})  # fmt: skip
        try:
            render(reminder.template, name, dict(reminder.context or {}))
        except UnknownTemplate as exc:
            errors.append({"field": "template", "message": str(exc).removeprefix("template: ")})
    return errors


def schedule(reminder: Reminder, now: datetime | None = None) -> Reminder:
    """After a change (create, edit, cancel, resume): one more version, the next
    occurrence from now (none if inactive), saved and its job enqueued when the caller's
    transaction commits. The old occurrence's job, if any, will find another time."""
    now = now or timezone.now()
    with transaction.atomic():
        if reminder.pk:  # serialise with a firing job, which locks the row too
            Reminder.objects.select_for_update().filter(pk=reminder.pk).first()
        reminder.version += 1
        reminder.next_fire_at = None
        if reminder.active:
            reminder.next_fire_at = next_occurrence(
                reminder.start_date, reminder.at, reminder.time_zone, reminder.repeat,
                reminder.interval, after=now,
            )  # fmt: skip
        reminder.save()
        _enqueue(reminder, now)
    return reminder


def _enqueue(reminder: Reminder, now: datetime) -> None:
    if reminder.next_fire_at is None:
        return
    delay = max(0, math.ceil((reminder.next_fire_at - now).total_seconds() * 1000))
    tasks.enqueue(JOB_TYPE, {
        "reminder_id": reminder.pk, "occurrence": occurrence_key(reminder.next_fire_at),
        "version": reminder.version,
    }, job_id=job_id(reminder, reminder.next_fire_at), delay=delay)  # fmt: skip


def fire(reminder_id: int, occurrence: int, now: datetime | None = None) -> dict[str, Any]:
    """Fire occurrence `occurrence` (epoch seconds) of the reminder if it is still the one
    due: notify(), move next_fire_at on (from now, so occurrences missed while workers were
    down are skipped, not sent in a burst) and enqueue its job, all in one transaction."""
    with transaction.atomic():
        reminder = Reminder.objects.select_for_update().filter(pk=reminder_id).first()
        if reminder is None:
            return {"fired": False, "reason": "deleted"}
        due = reminder.next_fire_at
        if not reminder.active or due is None or occurrence_key(due) != occurrence:
            return {"fired": False, "reason": "rescheduled or cancelled",
                    "version": reminder.version}  # fmt: skip
        now = now or timezone.now()
        who = reminder.user if reminder.user_id else reminder.recipient
        messages = notify(who, reminder.template, reminder.context, channels=reminder.channels)
        reminder.last_fired_at = due
        reminder.next_fire_at = next_occurrence(
            reminder.start_date, reminder.at, reminder.time_zone, reminder.repeat,
            reminder.interval, after=max(due, now),
        )  # fmt: skip
        if reminder.next_fire_at is None:
            reminder.active = False  # a one-off, done
        reminder.save(update_fields=["last_fired_at", "next_fire_at", "active", "updated_at"])
        _enqueue(reminder, now)
    return {"fired": True, "messageIds": [m.pk for m in messages], "version": reminder.version,
            "next": reminder.next_fire_at.isoformat() if reminder.next_fire_at else None}  # fmt: skip
