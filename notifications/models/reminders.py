"""Reminders: a notify() at a local time of day, once or repeating (the health platform's
patient reminders, generalised). notifications/reminders.py schedules and fires them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

__all__ = ["Reminder"]


class Reminder(models.Model):
    """`template` sent over `channels` to `user` or `recipient` at `at` local time in
    `time_zone`, from `start_date` on, repeating by `repeat` every `interval` days/weeks.

    One job per occurrence, `reminder-{pk}-{occurrence epoch seconds}`; it fires only if the
    row's `next_fire_at` is still its occurrence, so a reschedule or a second run of the
    same job never sends twice, and the next occurrence's job is enqueued as it fires.
    """

    NONE, DAILY, WEEKLY = "none", "daily", "weekly"
    REPEATS = [(NONE, "once"), (DAILY, "every N days"), (WEEKLY, "every N weeks")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.CASCADE, related_name="reminders")  # fmt: skip
    #: An email address or an E.164 number, when there is no user.
    recipient = models.CharField(max_length=254, blank=True, default="")
    template = models.CharField(max_length=100)
    context = models.JSONField(default=dict, blank=True)
    channels = models.JSONField(default=list, help_text='e.g. ["sms", "email"]')
    #: The local time of day, in `time_zone` (an IANA name: "Europe/Berlin").
    at = models.TimeField()
    time_zone = models.CharField(max_length=64, default="UTC")
    #: The local date of the first occurrence.
    start_date = models.DateField()
    repeat = models.CharField(max_length=10, choices=REPEATS, default=NONE)
    #: Every `interval` days (daily) or weeks (weekly): RRULE's FREQ and INTERVAL.
    interval = models.PositiveIntegerField(default=1)
    #: The occurrence due next (UTC), the one whose job may fire; null when none is left.
    next_fire_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    #: One more for every change of the schedule (API, admin); the jobs record it.
    version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        who = self.user or self.recipient
        return f"{self.template} to {who} at {self.at:%H:%M} {self.time_zone} ({self.repeat})"
