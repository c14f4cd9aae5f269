"""Delivering one Message, once: the work behind the deliver-* and send-email jobs.

A message is sent only while its row is `queued`, and a job run twice (redelivered, retried
after a crash) finds it `sent` and sends nothing. In-app, SMS and WhatsApp rows are locked
(select_for_update) for the send and their new state written in that transaction; a crash
after the provider accepted and before the commit resends (SMS with the same
Idempotency-Key). Email is handed over (notifications/handover.py): the row is marked just
before the SMTP end-of-data, so a crash at any point never makes it arrive twice.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from notifications.channels import DeliveryError, channel
from notifications.channels import email as email_channel
from notifications.handover import Handover, MessageLock
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
    """Delete the counters of minutes older than `older_than` (only the current minute is
    ever read); run by `sweep-notifications`. Returns how many rows went."""
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
        return _deliver_email(message_pk, last_attempt)
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


def _deliver_email(message_pk: int, last_attempt: bool) -> dict:
    """Email's once: a session advisory lock instead of the row lock (the row is written,
    and committed, in the middle of the send), and the hand-over mark (handover.py)."""
    with MessageLock(message_pk) as held:
        if not held:  # a run whose worker froze past its job lock, say: come back later
            raise DeliveryError(f"message {message_pk} is being sent by another run")
        message = Message.objects.filter(pk=message_pk).first()
        if message is None:
            raise MessageGone(f"no message {message_pk}")
        if message.state != Message.QUEUED:
            return {"state": message.state, "providerId": message.provider_id, "skipped": True}
        if message.handed_over_at is not None:  # a run died after handing it over
            when = message.handed_over_at
            return _handed_over(message, when, (
                f"handed over to the SMTP server at {when.isoformat()} by a run that stopped "
                "before the server's reply: counted as sent, not sent again"
            ), skipped=True)  # fmt: skip
        counted = Message.objects.filter(pk=message_pk).update(
            attempts=F("attempts") + 1, updated_at=timezone.now()
        )
        if not counted:  # deleted since it was read
            raise MessageGone(f"no message {message_pk}")
        message.attempts += 1
        handover = Handover(message_pk)
        try:
            provider_id = email_channel.send(message, handover)
        except DeliveryError as exc:
            if handover.stage == Handover.ENDED:  # the end-of-data went out; no reply came
                return _handed_over(message, timezone.now(), (
                    f"handed over to the SMTP server, whose reply never came ({exc}): "
                    "counted as sent, not sent again"
                ))  # fmt: skip
            # The server answered, or never saw the end of the data: it does not have it.
            message.last_error, message.handed_over_at = str(exc), None
            if exc.permanent or last_attempt:
                message.state = Message.FAILED
            message.save(update_fields=["last_error", "handed_over_at", "state", "updated_at"])
            raise
        message.state, message.sent_at = Message.SENT, timezone.now()
        message.provider_id = provider_id[:255]
        message.last_error = (
            f"sent, but the hand-over mark failed: {handover.mark_error}"
            if handover.stage == Handover.REPLIED and handover.mark_error else ""
        )  # fmt: skip
        message.save(update_fields=["state", "sent_at", "provider_id", "last_error",
                                    "updated_at"])  # fmt: skip
        return {"state": message.state, "providerId": message.provider_id, "skipped": False}


def _handed_over(message: Message, when, note: str, skipped: bool = False) -> dict:
    message.state, message.sent_at, message.last_error = Message.SENT, when, note
    message.provider_id = email_channel.message_id(message.pk)
    message.save(update_fields=["state", "sent_at", "provider_id", "last_error", "updated_at"])
    return {"state": message.state, "providerId": message.provider_id, "skipped": skipped}
