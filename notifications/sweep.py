"""The notifications sweep: messages and webhook deliveries whose job was lost, found and
sent again, and the per-domain email counters' old rows removed (notifications/jobs/sweep.py
runs it every five minutes).

A row is written and its job enqueued when the transaction commits; a process that dies
between the commit and the enqueue, or a Redis that lost its data, leaves a row `queued`
(a delivery `pending` or `retrying`) that no job will ever deliver. The sweep looks up each
such row older than NOTIFICATIONS_REQUEUE_AFTER_MINUTES in the registry and, when no job of
it exists (the row's own job, nor `message-{pk}` / `delivery-{pk}`), enqueues its delivery
job again under that id. The id makes this safe: a sweep racing another, or a job that
reappears, is the same job, never a second one; and the delivery itself sends only a row
still queued. A job that exists in any state (waiting, delayed, active, failed) is left
alone: a dead job is the dead-letter list's to retry.

Cost: one registry lookup (a Redis round trip) per row examined, at most `limit` rows per
kind per run, oldest first.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

import tasks
from notifications.channels import channel
from notifications.delivery import prune_domain_counts
from notifications.models import Delivery, Message
from notifications.webhooks.service import enqueue as enqueue_delivery

#: Rows of each kind examined per run at most (oldest first).
LIMIT = 10_000


def _job_exists(job_type: str, job_id: str | None) -> bool:
    return bool(job_id) and tasks.get_job(tasks.get_job_type(job_type).queue, job_id) is not None


def requeue_messages(older_than: timedelta, limit: int = LIMIT) -> list[int]:
    """Enqueue again the delivery job of each queued message older than `older_than` whose
    job is gone; the pks of those."""
    cutoff = timezone.now() - older_than
    rows = (Message.objects.filter(state=Message.QUEUED, created_at__lt=cutoff).order_by("pk")
            .values_list("pk", "channel", "job_id", "send_after")[:limit])  # fmt: skip
    requeued = []
    for pk, name, job_id, send_after in rows:
        deliver_type = channel(name).JOB_TYPE
        own_type = deliver_type if job_id == f"message-{pk}" else _direct_type(name)
        if _job_exists(own_type, job_id) or _job_exists(deliver_type, f"message-{pk}"):
            continue
        delay = 0
        if send_after is not None:  # notify(when=...): still its time, not earlier
            delay = max(0, int((send_after - timezone.now()).total_seconds() * 1000))
        tasks.enqueue(deliver_type, {"message_id": pk}, job_id=f"message-{pk}", delay=delay)
        requeued.append(pk)
    return requeued


def _direct_type(name: str) -> str:
    """The job type that writes its own row (`send-email`, `send-sms`, ...), whose id the
    row's job_id is; the delivery job for channels without one."""
    direct = {Message.EMAIL: "send-email", Message.SMS: "send-sms",
              Message.WHATSAPP: "send-whatsapp"}  # fmt: skip
    return direct.get(name, channel(name).JOB_TYPE)


def requeue_deliveries(older_than: timedelta, limit: int = LIMIT) -> list[int]:
    """The same for webhook deliveries still pending or retrying: job `delivery-{pk}`."""
    cutoff = timezone.now() - older_than
    rows = Delivery.objects.filter(status__in=[Delivery.PENDING, Delivery.RETRYING],
                                   created_at__lt=cutoff).order_by("pk")[:limit]  # fmt: skip
    requeued = []
    for delivery in rows:
        if not _job_exists("deliver-webhook", delivery.job_id):
            enqueue_delivery(delivery)
            requeued.append(delivery.pk)
    return requeued


def sweep() -> dict:
    after = timedelta(minutes=settings.NOTIFICATIONS_REQUEUE_AFTER_MINUTES)
    return {
        "requeuedMessages": requeue_messages(after),
        "requeuedDeliveries": requeue_deliveries(after),
        "domainCountsPruned": prune_domain_counts(),
    }
