"""In-app: the message becomes an InboxItem in its user's inbox (GET /api/v1/notifications)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from notifications.channels import DeliveryError
from notifications.models import InboxItem

#: The job that delivers a notify() in-app message (notifications/jobs/messages.py).
JOB_TYPE = "deliver-inapp"


def recipient_for(obj) -> str:
    if not isinstance(obj, get_user_model()):
        raise ValueError(f"the inapp channel needs a User, not {obj!r}")
    return obj.get_username()


def send(message) -> str:
    """Written in the delivery's transaction, one per message (the OneToOne), however often
    it runs."""
    if message.user_id is None:
        raise DeliveryError(f"message {message.pk} has no user (deleted?)", permanent=True)
    item, _ = InboxItem.objects.get_or_create(message=message, defaults={
        "user_id": message.user_id, "title": message.subject, "body": message.body,
        "link": str(message.context.get("link", ""))[:500],
    })  # fmt: skip
    return f"inbox-{item.pk}"
