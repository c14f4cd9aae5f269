"""`fire-reminder {reminderId, occurrence, version}` (queue `notifications`): one occurrence
of a reminder, enqueued with a delay as job `reminder-{pk}-{occurrence}` (the work is
notifications/reminders.py: it fires only if that is still the reminder's next occurrence)."""

from __future__ import annotations

from notifications import reminders
from tasks import job_type


@job_type("fire-reminder", queue="notifications", attempts=3,
          backoff={"type": "exponential", "delay": 5000, "factor": 5, "jitter": 0.2})  # fmt: skip
def fire_reminder(job, reminder_id: int, occurrence: int, version: int = 0) -> dict:
    """notify() for this occurrence and enqueue the next; nothing if it was rescheduled,
    cancelled or already fired (`version` is the row's when it was enqueued: a record)."""
    return reminders.fire(reminder_id, occurrence)
