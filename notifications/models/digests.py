"""Dead-job digests: the operators' email about jobs that failed for good, one row per
queue, job type and window, so that a burst of dead jobs is one email, not one each."""

from __future__ import annotations

from django.db import models

__all__ = ["DeadJobDigest"]


class DeadJobDigest(models.Model):
    """The dead jobs of one (queue, job type) whose event came in one window; sent (one
    email per JOB_DEAD_EMAILS address) once the window has closed."""

    #: Job ids kept per digest: the email names these, and counts the rest.
    MAX_JOB_IDS = 20

    queue = models.CharField(max_length=64)
    job_name = models.CharField(max_length=200)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    job_ids = models.JSONField(default=list)
    #: The last failure reason seen: most bursts share one.
    failed_reason = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "job_name", "window_start"],
                                               name="notif_dead_digest_window")]  # fmt: skip
        indexes = [models.Index(fields=["sent_at", "window_start"], name="notif_dead_digest_due")]

    def __str__(self) -> str:
        return f"{self.count} dead {self.job_name} on {self.queue} from {self.window_start}"
