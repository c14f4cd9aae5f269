"""What Jobyard keeps beside each django-celery-beat PeriodicTask.

The PeriodicTask row is the schedule as the admin edits it (name = key, task = a job type
or a plain Celery task, args / kwargs, crontab / interval / clocked, start time, expiry,
priority, queue, one-off, enabled). This row adds what celery-beat has no field for, and
the bookkeeping that makes firing exactly-once. `Schedule` is the PeriodicTask under
Jobyard's own admin section.
"""

from django.db import models
from django.utils import timezone
from django_celery_beat.models import PeriodicTask


class JobSchedule(models.Model):
    class Misfire(models.TextChoices):
        ONCE = "once", "fire once on return"
        SKIP = "skip", "skip missed runs"

    periodic_task = models.OneToOneField(
        PeriodicTask, on_delete=models.CASCADE, related_name="jobyard", primary_key=True
    )
    seconds = models.CharField(
        max_length=64, blank=True, default="",
        help_text="Seconds field of a 6-field cron (e.g. */10); empty for 5 fields.",
    )  # fmt: skip
    every_ms = models.PositiveBigIntegerField(
        null=True, blank=True,
        help_text="The interval in milliseconds; must agree with the interval row, which is "
                  "what fires (empty: the interval row alone).",
    )  # fmt: skip
    options = models.JSONField(
        default=dict, blank=True, help_text="Job options, as enqueue takes them (job types only)."
    )
    misfire = models.CharField(max_length=8, choices=Misfire.choices, default=Misfire.ONCE)
    anchor = models.DateTimeField(
        default=timezone.now, help_text="Intervals fall on anchor + k x interval."
    )
    last_tick = models.DateTimeField(null=True, blank=True, help_text="The due time last handled.")
    last_job_id = models.CharField(max_length=128, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    #: The pattern last seen by the beat: an edited pattern starts afresh, not backfilled.
    fingerprint = models.CharField(max_length=300, blank=True, default="")
    #: Installed from CELERY_BEAT_SCHEDULE: the entry as last installed. The entry changed
    #: in the settings is installed again; unchanged, an edit made in the admin stays.
    config_digest = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        verbose_name = "job schedule"

    def __str__(self) -> str:
        return self.periodic_task.name


class Schedule(PeriodicTask):
    """django-celery-beat's PeriodicTask, listed in Jobyard's admin section (Schedules)."""

    class Meta:
        proxy = True
        verbose_name = "schedule"
        verbose_name_plural = "schedules"
