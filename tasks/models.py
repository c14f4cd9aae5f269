"""The job archive: every job the registry held, as PostgreSQL rows the admin browses.

Redis keeps the hot registry and trims it (100 completed and 50 failed per queue by
default); the recorder (tasks/recorder.py) copies each state change from the queues' event
streams into these rows, so a job stays findable long after the registry let it go. Every
write goes through tasks/archive.py, the rows' one writer.
"""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.db import models

#: The archive's states (registry states, `paused` as `waiting`, plus `cancelled`).
from tasks.states import ARCHIVE_STATES as STATES


class JobRecord(models.Model):
    queue = models.CharField(max_length=64)
    job_id = models.CharField("job id", max_length=128)
    #: The job type; empty when the job left the registry before the recorder read it
    #: (events carry the state, result and reason, not the name and data).
    name = models.CharField("job type", max_length=128, blank=True)
    state = models.CharField(max_length=16, choices=[(s, s) for s in STATES])
    data = models.JSONField(default=dict, blank=True)
    opts = models.JSONField("options", default=dict, blank=True)
    returnvalue = models.JSONField("result", null=True, blank=True)
    failed_reason = models.TextField(blank=True)
    stacktrace = models.JSONField(default=list, blank=True)
    attempts_made = models.PositiveIntegerField(default=0)
    progress = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    processed_on = models.DateTimeField("started", null=True, blank=True)
    finished_on = models.DateTimeField("finished", null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    #: When the job was removed from the registry (remove, cancel). Jobs dropped by
    #: retention or clean() leave no event: they keep their last state and no date here.
    removed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "job"
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("queue", "job_id"), name="jobrecord_queue_job_id"),
        ]
        # One index per admin filter, each ending in the list's order (-created_at, -id),
        # so a filtered page is an index range read, never a sort of the matching rows.
        indexes = [
            models.Index(fields=("-created_at", "-id"), name="jobrecord_created"),
            models.Index(fields=("state", "-created_at", "-id"), name="jobrecord_state"),
            models.Index(fields=("queue", "-created_at", "-id"), name="jobrecord_queue"),
            models.Index(
                fields=("queue", "state", "-created_at", "-id"), name="jobrecord_queue_state"
            ),
            models.Index(fields=("name", "-created_at", "-id"), name="jobrecord_name"),
            models.Index(
                fields=("-created_at", "-id"),
                name="jobrecord_removed",
                condition=models.Q(removed_at__isnull=False),
            ),
            # Pruning by age (tasks/archive_retention.py): each batch of one queue's rows of
            # one final state older than a cutoff is a short range scan of one of these.
            models.Index(fields=("queue", "state", "finished_on"), name="jobrecord_prune"),
            models.Index(
                fields=("queue", "removed_at"),
                name="jobrecord_prune_cancelled",
                condition=models.Q(state="cancelled"),
            ),
            # Search by id: equality and prefix (LIKE 'abc%') whatever the collation.
            models.Index(
                fields=("job_id",), name="jobrecord_job_id", opclasses=("varchar_pattern_ops",)
            ),
            # Search in data: containment (@>) and JSON path (@?) queries.
            GinIndex(fields=("data",), name="jobrecord_data"),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'job'} {self.job_id} ({self.queue})"


class JobAttempt(models.Model):
    """One run of a job: opened by its `active` event, closed by the event that ended it."""

    RUNNING, COMPLETED, FAILED, RETRYING, STALLED = (
        "running", "completed", "failed", "retrying", "stalled",
    )  # fmt: skip
    OUTCOMES = [
        (RUNNING, "running"),
        (COMPLETED, "completed"),
        (FAILED, "failed"),
        (RETRYING, "failed, retried"),
        (STALLED, "stalled (worker lost)"),
    ]

    job = models.ForeignKey(JobRecord, on_delete=models.CASCADE, related_name="attempts")
    #: 1, 2, ... over the job's whole life in the archive: a retry from the dead-letter
    #: list restarts the registry's attemptsMade, not this.
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=OUTCOMES, default=RUNNING)
    failed_reason = models.TextField(blank=True)
    worker = models.CharField(max_length=255, blank=True)
    #: The stream entry of the `active` event that opened it: replaying that event (after
    #: a recorder crashed between its commit and its XACK) finds this row, not a new one.
    event_id = models.CharField(max_length=32)

    class Meta:
        ordering = ("job", "number")
        constraints = [
            models.UniqueConstraint(fields=("job", "number"), name="jobattempt_job_number"),
            models.UniqueConstraint(fields=("job", "event_id"), name="jobattempt_job_event"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number}"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return round((self.finished_at - self.started_at).total_seconds() * 1000)
        return None


class ArchiveError(models.Model):
    """An event the archive could not apply (PostgreSQL refused its row, or it was malformed).

    The recorder isolates it from its batch, keeps it here, acknowledges it and goes on;
    the rest of the batch is archived. The dashboard counts these rows.
    """

    queue = models.CharField(max_length=64)
    #: The event's stream entry id: one row per event, however often it is applied.
    stream_id = models.CharField("stream id", max_length=48)
    job_id = models.CharField("job id", max_length=128, blank=True)
    #: The event as it was on the stream (escaped like every archived value).
    event = models.JSONField(default=dict)
    error = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "archive error"
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=("queue", "stream_id"), name="archiveerror_queue_stream_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.stream_id}: {self.error[:60]}"


class ArchiveGap(models.Model):
    """Events of a queue trimmed from its stream before the recorder read them.

    Found by the recorder (tasks/recorder.py) from the stream's and its group's counters;
    the queue's jobs still in the registry were archived from there (`jobs_recovered`).
    """

    queue = models.CharField(max_length=64)
    #: The last entry the recorder had read before the gap (0-0: none).
    after_id = models.CharField("after stream id", max_length=48)
    #: The first entry still on the stream when the gap was found (empty: the stream was).
    before_id = models.CharField("before stream id", max_length=48, blank=True)
    events_lost = models.PositiveIntegerField("events lost")
    jobs_recovered = models.PositiveIntegerField("jobs archived from the registry", default=0)
    #: Jobs that finished in the gap's minutes (the per-minute stats) and that neither the
    #: registry nor the archive holds: an estimate, to the minute.
    jobs_unrecoverable = models.PositiveIntegerField("jobs lost (estimate)", default=0)
    detected_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "archive gap"
        ordering = ("-detected_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("queue", "after_id"), name="archivegap_queue_after_id"),
        ]

    def __str__(self) -> str:
        return f"{self.queue}: {self.events_lost} events lost after {self.after_id}"
