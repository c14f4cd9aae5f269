"""Daily job statistics: one row per day, queue and job type, aggregated from the job
archive by `aggregate-daily` (docs/aggregation.md); the admin dashboard charts 30 days."""

from __future__ import annotations

from django.db import models

__all__ = ["DailyJobStat"]


class DailyJobStat(models.Model):
    #: The job_type of a queue's own row: every job type of the queue together (its
    #: percentiles computed over all its jobs, not derived from the per-type rows).
    ALL_TYPES = "*"

    day = models.DateField(help_text="UTC day the jobs finished on")
    queue = models.CharField(max_length=64)
    job_type = models.CharField(max_length=128, help_text="* is the whole queue")
    processed = models.PositiveIntegerField(default=0, help_text="completed")
    failed = models.PositiveIntegerField(default=0)
    retried = models.PositiveIntegerField(default=0, help_text="attempts beyond the first")
    processing_p50_ms = models.FloatField("processing p50 (ms)", null=True, blank=True)
    processing_p95_ms = models.FloatField("processing p95 (ms)", null=True, blank=True)
    wait_p50_ms = models.FloatField("wait p50 (ms)", null=True, blank=True)
    wait_p95_ms = models.FloatField("wait p95 (ms)", null=True, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "daily job statistic"
        ordering = ("-day", "queue", "job_type")
        constraints = [
            models.UniqueConstraint(
                fields=("day", "queue", "job_type"), name="dailyjobstat_day_queue_type"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.queue} {self.job_type}"
