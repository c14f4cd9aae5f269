"""Webhooks: endpoints, and one row per delivery and per attempt (saleor's EventDelivery /
EventDeliveryAttempt), so a failed delivery is a query, not a log search."""

from __future__ import annotations

from django.db import models

__all__ = ["Delivery", "DeliveryAttempt", "Endpoint", "EVENT_TYPES"]

#: Every event type an endpoint may subscribe to (docs/webhooks.md, "Events").
EVENT_TYPES = (
    "job.completed", "job.failed", "job.dead", "report.ready", "calc.batch.completed", "ping",
    "alert.opened", "alert.resolved",
)  # fmt: skip


class Endpoint(models.Model):
    """A receiver: where, how it is signed, what it wants, and whether it still gets it."""

    url = models.URLField(max_length=2000)
    #: HMAC key: `whsec_<base64>` (its bytes are the key, as Standard Webhooks' libraries
    #: read it) or any other string of at least 24 characters (its UTF-8 bytes).
    secret = models.CharField(max_length=200)
    event_types = models.JSONField(default=list, help_text='e.g. ["job.failed", "report.ready"]')
    #: Blank: the operator's endpoint (every tenant's events, and job events).
    tenant_id = models.CharField(max_length=40, blank=True, default="")
    description = models.CharField(max_length=200, blank=True, default="")
    owner_email = models.EmailField(blank=True, default="")
    active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.CharField(max_length=500, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    #: When the owner was told the endpoint was disabled (see webhooks/delivery.py's hook).
    owner_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url


class Delivery(models.Model):
    """One event for one endpoint. Retries are attempts of the same row; a replay is a new
    row (`replay_of`) with the same event id and payload."""

    PENDING, RETRYING, DELIVERED, FAILED = "pending", "retrying", "delivered", "failed"
    STATUSES = [(s, s) for s in (PENDING, RETRYING, DELIVERED, FAILED)]

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=64)
    #: The `webhook-id` header: the same for every attempt and replay of this event, so a
    #: receiver can drop duplicates.
    event_id = models.CharField(max_length=200)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    replay_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="replays")  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            # The event loop may hand the same event twice: it makes one delivery.
            models.UniqueConstraint(
                fields=["endpoint", "event_id"],
                condition=models.Q(replay_of__isnull=True),
                name="notifications_delivery_once",
            ),  # fmt: skip
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="notif_delivery_status")]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"

    @property
    def job_id(self) -> str:
        return f"delivery-{self.pk}"


class DeliveryAttempt(models.Model):
    """One POST (with its redirects) of a delivery, or its refusal before any was sent."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    #: delivered, retry, failed (permanent), refused (the SSRF guard)
    outcome = models.CharField(max_length=16)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    duration_ms = models.FloatField(default=0)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["delivery", "number", "id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.outcome}"
