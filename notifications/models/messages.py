"""Messages: one row per recipient and channel that `notify()` (or `send-email`) sends, and
the in-app inbox the `inapp` channel writes to."""

from __future__ import annotations

from django.conf import settings
from django.db import models

__all__ = ["DomainSendCount", "InboxItem", "Message"]


class Message(models.Model):
    """One message to one recipient over one channel, and how delivering it went.

    The delivery job sends only while it is `queued`, and a rerun never sends twice: an
    in-app or SMS row is locked for the send and its state written in that transaction; an
    email is marked `handed_over_at` before the SMTP end-of-data (notifications/handover.py).
    """

    QUEUED, SENT, FAILED, SUPPRESSED = "queued", "sent", "failed", "suppressed"
    STATES = [(s, s) for s in (QUEUED, SENT, FAILED, SUPPRESSED)]
    EMAIL, INAPP, SMS, WHATSAPP = "email", "inapp", "sms", "whatsapp"
    CHANNELS = [(EMAIL, "email"), (INAPP, "in-app"), (SMS, "SMS"), (WHATSAPP, "WhatsApp")]

    channel = models.CharField(max_length=20, choices=CHANNELS)
    #: The address (email), the username (in-app) or the E.164 number (SMS, WhatsApp).
    recipient = models.CharField(max_length=254, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="messages")  # fmt: skip
    template = models.CharField(max_length=100, blank=True)
    context = models.JSONField(default=dict, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    body = models.TextField(blank=True)
    html = models.TextField(blank=True)
    #: Names in default_storage, attached as files (email only).
    attachments = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=10, choices=STATES, default=QUEUED, db_index=True)
    provider_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    #: The job that delivers it (`message-{pk}` from notify, the job's own id for send-email).
    job_id = models.CharField(max_length=128, unique=True, null=True, blank=True)
    send_after = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    #: An email whose body the SMTP server has and whose end-of-data was being written: set
    #: and committed just before that write, so a rerun after a crash never sends it again.
    handed_over_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel} to {self.recipient}: {self.subject or self.template}"


class InboxItem(models.Model):
    """An in-app notification in a user's inbox (GET /api/v1/notifications)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="inbox_items")  # fmt: skip
    #: The message that wrote it: one item per message, however often delivery runs.
    message = models.OneToOneField(Message, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="inbox_item")  # fmt: skip
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=500, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["user", "read_at", "-created"], name="notif_inbox_user")]

    def __str__(self) -> str:
        return f"{self.user}: {self.title}"


class DomainSendCount(models.Model):
    """Emails started per recipient domain per minute: the per-domain rate limit's counter
    (notifications/delivery.py), one upsert per email, only when the limit is set."""

    domain = models.CharField(max_length=254)
    minute = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["domain", "minute"],
                                               name="notif_domain_minute")]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.domain} at {self.minute:%Y-%m-%d %H:%M}: {self.count}"
