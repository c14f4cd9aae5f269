"""Operators' email about dead jobs (failed past their attempts: the `job.dead` webhook
event), sent by the `webhook_events` loop (notifications/webhooks/sources.py).

Off unless JOB_DEAD_EMAILS names addresses. A burst of dead jobs must be one email, not
one per job: each dead job is counted into a DeadJobDigest row for its (queue, job type)
and the window of JOB_DEAD_DIGEST_SECONDS (60) its event came in, in the transaction that
makes its webhook deliveries; once the window has closed, the loop claims the row (a
conditional UPDATE: exactly one loop sends it) and notify()s one email per address. So
1,000 dead jobs of one type in a minute are one email a minute later, with their count,
the last reason and the first 20 ids. Cost: one upsert per dead job, one query per turn.

Events are at least once: a batch handed twice counts its dead jobs twice (the ids
listed are not doubled). The first dead job's email waits for its window to close."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from notifications.models import DeadJobDigest
from notifications.notify import notify

TEMPLATE = "job-dead"


def enabled() -> bool:
    return bool(settings.JOB_DEAD_EMAILS)


def window_start(moment: datetime) -> datetime:
    seconds = settings.JOB_DEAD_DIGEST_SECONDS
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def record(queue: str, job_name: str, job_id: str, failed_reason: str,
           now: datetime | None = None) -> None:  # fmt: skip
    """Count one dead job into its window's digest (call inside the caller's transaction)."""
    start = window_start(now or timezone.now())
    digest, _ = DeadJobDigest.objects.get_or_create(
        queue=queue, job_name=job_name[:200], window_start=start
    )
    DeadJobDigest.objects.filter(pk=digest.pk).update(count=F("count") + 1)
    changes = {}
    if len(digest.job_ids) < DeadJobDigest.MAX_JOB_IDS and job_id not in digest.job_ids:
        changes["job_ids"] = [*digest.job_ids, job_id]
    if failed_reason:
        changes["failed_reason"] = failed_reason[:2000]
    if changes:
        DeadJobDigest.objects.filter(pk=digest.pk).update(**changes)


def send_due(now: datetime | None = None) -> int:
    """Email every digest whose window has closed; how many digests were sent."""
    if not enabled():
        return 0
    now = now or timezone.now()
    seconds = settings.JOB_DEAD_DIGEST_SECONDS
    closed = now - timedelta(seconds=seconds)
    sent = 0
    due = DeadJobDigest.objects.filter(sent_at__isnull=True, window_start__lte=closed)
    for digest in due.order_by("window_start")[:100]:
        with transaction.atomic():
            # Claimed by exactly one loop: a second one's UPDATE changes no row.
            if DeadJobDigest.objects.filter(pk=digest.pk, sent_at__isnull=True).update(
                sent_at=now
            ) != 1:  # fmt: skip
                continue
            digest.refresh_from_db()
            notify(settings.JOB_DEAD_EMAILS, TEMPLATE, {
                "queue": digest.queue, "jobName": digest.job_name, "count": digest.count,
                "jobIds": digest.job_ids, "failedReason": digest.failed_reason,
                "windowStart": digest.window_start.isoformat(),
                "windowEnd": (digest.window_start + timedelta(seconds=seconds)).isoformat(),
                "windowSeconds": seconds,
            })  # fmt: skip
            sent += 1
    return sent
