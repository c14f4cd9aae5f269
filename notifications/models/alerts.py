"""Alerts: one row per episode of a rule firing for a subject (a queue, a worker, Redis)."""

from __future__ import annotations

from django.db import models

__all__ = ["Alert"]


class Alert(models.Model):
    """An episode: opened when a rule first fires for its subject, updated by each check
    while it fires (last and peak value), resolved once when it stops. At most one open
    alert per (rule, subject): a unique partial index, so two concurrent checks cannot open
    two (the second one's insert fails and it sends nothing)."""

    rule = models.CharField(max_length=40)
    #: The queue, the worker's name, or "redis".
    subject = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    #: When a check last saw the rule fire.
    checked_at = models.DateTimeField()
    threshold = models.FloatField()
    #: The worst and the latest reading while open (jobs, a ratio, minutes, seconds, %).
    peak_value = models.FloatField()
    last_value = models.FloatField()
    message = models.TextField()

    class Meta:
        ordering = [models.F("resolved_at").desc(nulls_first=True), "-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=models.Q(resolved_at__isnull=True),
                name="notifications_alert_one_open",
            ),  # fmt: skip
        ]
        indexes = [models.Index(fields=["started_at"], name="notif_alert_started")]

    def __str__(self) -> str:
        state = "open" if self.is_open else "resolved"
        return f"{self.rule} {self.subject} ({state})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def payload(self) -> dict:
        """The webhook `data` and the email templates' context (JSON)."""
        return {
            "id": self.pk, "rule": self.rule, "subject": self.subject,
            "startedAt": self.started_at.isoformat(),
            "resolvedAt": self.resolved_at.isoformat() if self.resolved_at else None,
            "threshold": self.threshold, "peakValue": self.peak_value,
            "lastValue": self.last_value, "message": self.message,
        }  # fmt: skip
