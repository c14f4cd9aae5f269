"""Delivering one Message, once: the work behind the deliver-* and send-email jobs.

The row is locked (select_for_update) for the send, sent only while `queued`, and its new
state and provider id are written in the same transaction: a job run twice (redelivered,
retried after a crash) finds it `sent` and sends nothing. A crash after the send and before
the commit sends it again with the same Message-ID (channels/email.py), which is the one
window at-least-once delivery leaves open.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from notifications.channels import DeliveryError, channel
from notifications.models import DomainSendCount, Message


class MessageGone(Exception):
    """The row is not there (deleted): nothing to deliver, no retry brings it back."""


class RateLimited(DeliveryError):
    """The recipient's domain had its share this minute: try again shortly (retryable)."""


def check_domain_rate(domain: str) -> None:
    """Count this send against its domain's minute; RateLimited past
    settings.EMAIL_DOMAIN_RATE_LIMIT per minute (0: no limit, no query). Its own
    transaction, before the row lock: one upsert, never held across an SMTP session."""
    limit = settings.EMAIL_DOMAIN_RATE_LIMIT
    if not limit:
        return
    minute = timezone.now().replace(second=0, microsecond=0)
    table = DomainSendCount._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (domain, minute, count) VALUES (%s, %s, 1)"
            f" ON CONFLICT (domain, minute) DO UPDATE SET count = {table}.count + 1"
            " RETURNING count", [domain, minute],
        )  # fmt: skip
        (count,) = cursor.fetchone()
    if count > limit:
        wait = 60 - timezone.now().second
        raise RateLimited(
            f"rate limited: over {limit} emails a minute to {domain}; due in {wait} s"
        )


def prune_domain_counts(older_than: timedelta = timedelta(hours=1)) -> int:
    return DomainSendCount.objects.filter(minute__lt=timezone.now() - older_than).delete()[0]


def deliver(message_pk: int, last_attempt: bool = False) -> dict:
    """Send the message if it is still queued. Returns {state, providerId, skipped};
    raises DeliveryError (`permanent` or not) after recording it on the row.
    `last_attempt`: a retryable failure then fails the row too (the job fails for good)."""
    peek = Message.objects.filter(pk=message_pk).values("channel", "recipient", "state").first()
    if peek is None:
        raise MessageGone(f"no message {message_pk}")
    if peek["state"] != Message.QUEUED:
        return {"state": peek["state"], "providerId": None, "skipped": True}
    if peek["channel"] == Message.EMAIL:
        try:
            check_domain_rate(peek["recipient"].rpartition("@")[2].lower())
        except RateLimited as exc:
            Message.objects.filter(pk=message_pk, state=Message.QUEUED).update(
                last_error=str(exc), **({"state": Message.FAILED} if last_attempt else {})
            )
            raise
    failure: DeliveryError | None = None
    with transaction.atomic():
        message = Message.objects.select_for_update().filter(pk=message_pk).first()
        if message is None:
            raise MessageGone(f"no message {message_pk}")
        if message.state != Message.QUEUED:  # another run sent it while we waited
            return {"state": message.state, "providerId": message.provider_id, "skipped": True}
        message.attempts += 1
        try:
            message.provider_id = channel(message.channel).send(message)[:255]
        except DeliveryError as exc:
            failure = exc
            message.last_error = str(exc)
            if exc.permanent or last_attempt:
                message.state = Message.FAILED
        else:
            message.state, message.sent_at, message.last_error = Message.SENT, timezone.now(), ""
        message.save()
    if failure is not None:
        raise failure
    return {"state": message.state, "providerId": message.provider_id, "skipped": False}
