"""Event sources: the platform's job events and the catalog's outbox, turned into deliveries.

Job events come through `tasks.consume` (a Redis consumer group, GROUP): the platform does
not know notifications exists. Outbox rows come through `catalog.outbox` (the catalog's
one public function for it): the catalog does not know either. Both are at least once, and
`create_deliveries` makes one delivery per (endpoint, event id), so a batch handed twice
delivers once. Run by `manage.py webhook_events` (the Procfile's `webhook_events`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

import tasks
from catalog import outbox
from notifications import dead_jobs
from notifications.models import Endpoint
from notifications.notify import notify
from notifications.webhooks.service import JOB_TYPE, create_deliveries

#: The consumer group reading the job events.
GROUP = "notifications-webhooks"
#: Platform event -> the webhook event types it makes. `job.failed`: an attempt failed
#: (retried or not); `job.dead`: the job failed for good and is in the dead-letter list.
JOB_EVENTS = {
    "completed": ("job.completed",),
    "retrying": ("job.failed",),
    "failed": ("job.failed", "job.dead"),
}


def job_event_queues() -> list[str]:
    """Every queue but the deliveries' own: a delivery's job events must not make more
    deliveries (a failing endpoint subscribed to job.failed would feed itself)."""
    own = tasks.get_job_type(JOB_TYPE).queue
    return [queue for queue in settings.JOBYARD_QUEUES if queue != own]


def handle_job_events(events: list[tasks.Event]) -> int:
    """Deliveries for a batch of job events (the consume handler); how many were made."""
    wanted = {t for types in Endpoint.objects.filter(active=True).values_list("event_types", flat=True)
              for t in types}  # fmt: skip
    made = 0
    emails = dead_jobs.enabled()
    with transaction.atomic():
        for event in events:
            types = [t for t in JOB_EVENTS.get(event.event, ()) if t in wanted]
            dead = emails and event.event == "failed"
            if not types and not dead:
                continue
            # One Redis round trip per subscribed event: the name and data are not on the stream.
            job = tasks.get_job(event.queue, event.job_id)
            data = job_payload(event, job)
            if dead:  # the operators' email (notifications/dead_jobs.py)
                dead_jobs.record(event.queue, data["name"] or "(unknown)", event.job_id,
                                 data["failedReason"] or "")  # fmt: skip
            tenant = (job.data.get("tenantId") or job.data.get("tenant_id") or "") if job else ""
            for event_type in types:
                event_id = f"job_{event.queue}_{event.id}_{event_type}"
                made += len(create_deliveries(event_type, event_id, data, str(tenant)))
    return made


def job_payload(event: tasks.Event, job: tasks.Job | None) -> dict[str, Any]:
    attempts = event.fields.get("attemptsMade")
    data: dict[str, Any] = {
        "queue": event.queue, "jobId": event.job_id, "event": event.event,
        "name": job.name if job else None,
        "attemptsMade": int(attempts) if attempts and attempts.isdigit() else
        (job.attempts_made if job else None),
    }  # fmt: skip
    if event.event == "completed":
        data["returnvalue"] = job.returnvalue if job else None
    else:
        data["failedReason"] = event.fields.get("failedReason") or (
            job.failed_reason if job else None
        )
        data["willRetry"] = event.event == "retrying"
    return data


def drain_outbox(limit: int = 100) -> int:
    """Deliveries for up to `limit` pending outbox events, which are then marked delivered
    (an event nobody subscribes to is marked too: it was handled); how many events."""
    with outbox.pending(limit) as events:
        for event in events:
            create_deliveries(event["type"], f"outbox_{event['key']}", event["payload"],
                              event["tenantId"])  # fmt: skip
            if event["type"] == "report.ready":
                tell_requester(event["payload"])
    return len(events)


def tell_requester(payload: dict[str, Any]) -> None:
    """A report is ready: its requester hears of it in the inbox and by email (when the
    account has an address), in the outbox row's transaction, so once."""
    requester = User.objects.filter(pk=payload.get("userId"), is_active=True).first()
    if requester is None:
        return
    channels = ["inapp", "email"] if requester.email else ["inapp"]
    notify([requester], "report-ready", payload, channels=channels)


def run(*, once: bool = False, block_ms: int = 1000, stop=lambda: False) -> dict[str, int]:
    """The loop: a batch of job events (waiting up to block_ms), then the outbox, until
    `stop()` (or one turn, `once`), sending the dead-job digests whose window closed.
    Returns the events and outbox rows handled and the digests sent."""
    totals = {"jobEvents": 0, "outboxEvents": 0, "deadJobDigests": 0}

    def one_batch():
        turns = iter([False])
        return lambda: next(turns, True)  # consume() runs one turn, then stops

    while True:
        totals["jobEvents"] += tasks.consume(
            GROUP, handle_job_events, queues=job_event_queues(), block_ms=block_ms, stop=one_batch()
        )
        while (drained := drain_outbox()) > 0:
            totals["outboxEvents"] += drained
        totals["deadJobDigests"] += dead_jobs.send_due()
        if once or stop():
            return totals
