"""Celery's worker consumer, with what a rolling deploy needs: a job of a type this worker
does not know goes back to its queue, unrun and without burning an attempt.

Stock Celery logs such a message as "unregistered", discards it and records the task as
failed: the job would be lost for good the moment an old worker met a new type. Here it is
handed back (hand_back.lua), due again after JOBYARD_UNKNOWN_TYPE_DELAY_MS so that a worker
that knows the type takes it, logged once per worker and type, and shown on the dashboard.
If no worker has run it within JOBYARD_UNKNOWN_TYPE_GRACE_MS, it fails, saying why.
(`worker_consumer` in project/settings.py names this class.)
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from celery import signals
from celery.worker.consumer import Consumer as CeleryConsumer
from django.conf import settings

from tasks import keys, scripts
from tasks.connection import get_redis
from tasks.worker.claims import CLAIM_HEADER, claim, job_address, worker_name
from tasks.worker.runner import PLAIN_OPTIONS, record_failure, record_unrunnable

log = structlog.get_logger("jobyard.jobs")

#: (worker, job type) pairs logged already by this process.
_logged: set[tuple[str, str]] = set()


def note_unknown(worker: str, name: str) -> None:
    """Log once per worker and type, and tell the dashboard (kept for a while, see
    tasks/dashboard.py), that `worker` received a job of a type it does not know."""
    if (worker, name) not in _logged:
        _logged.add((worker, name))
        log.warning("job_type_unknown", worker=worker, job_type=name,
                    hint="a worker older than the code that sent this job: deploy workers first")  # fmt: skip
    get_redis().hset(keys.unknown_types(), f"{worker}\t{name}", int(time.time() * 1000))


class Consumer(CeleryConsumer):
    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        headers = message.headers or {}
        name = str(headers.get("task"))
        address = job_address({**headers, "delivery_info": message.delivery_info})
        worker = worker_name(self.hostname)
        queue = message.delivery_info.get("routing_key")
        if address is None:
            if headers.get("id") and queue in settings.JOBYARD_QUEUES:
                # A message no transport registered: a failed job says what became of it.
                record_unrunnable(queue, str(headers["id"]), name, {"body": str(body)[:1000]},
                                  worker, f"unknown task {name!r} (not registered in {worker})")  # fmt: skip
            return super().on_unknown_task(body, message, exc)
        queue, job_id = address
        claimed = headers.get(CLAIM_HEADER) or claim(queue, job_id, worker)
        if not isinstance(claimed, dict):  # not this worker's to run (a duplicate copy)
            message.ack()
            return
        conf = settings.JOBYARD
        keep, age = PLAIN_OPTIONS.retention(False, settings.JOBYARD_QUEUES[queue]["keep_failed"])
        reason = (f"job type {name!r} is unknown to the workers that received it (last: "
                  f"{worker}) for over {conf['UNKNOWN_TYPE_GRACE_MS'] / 1000:g} s")  # fmt: skip
        try:
            outcome = scripts.hand_back(queue, job_id, claimed["token"],
                                        conf["UNKNOWN_TYPE_DELAY_MS"], reason,
                                        conf["UNKNOWN_TYPE_GRACE_MS"], keep, age)  # fmt: skip
            note_unknown(worker, name)
        except Exception:  # Redis away: the lock expires and the job is found stalled
            log.warning("hand_back_failed", job_id=job_id, exc_info=True)
        else:
            if outcome == "failed":
                log.error("job_failed", job_id=job_id, job_type=name, queue=queue, reason=reason)
        message.ack()
        signals.task_unknown.send(sender=self, message=message, exc=exc, name=name, id=job_id)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        """A message Celery cannot read as a task (a malformed body): a registry job it
        carries fails, naming the cause, instead of waiting for its lock to expire."""
        headers = message.headers or {}
        address = job_address({**headers, "delivery_info": message.delivery_info})
        claimed = headers.get(CLAIM_HEADER)
        if address is not None and claimed:
            queue, job_id = address
            reason = f"invalid task message: {exc}"
            fields = {"job_id": job_id, "job_type": headers.get("task"), "queue": queue}
            try:
                record_failure(queue, claimed["token"], PLAIN_OPTIONS, reason, "", -1, fields)
            except Exception:
                log.warning("job_outcome_not_recorded", job_id=job_id, exc_info=True)
        elif (
            headers.get("id")
            and headers.get("task")
            and message.delivery_info.get("routing_key") in settings.JOBYARD_QUEUES
        ):
            record_unrunnable(message.delivery_info["routing_key"], str(headers["id"]),
                              str(headers["task"]), {"body": str(body)[:1000]},
                              worker_name(self.hostname), f"invalid task message: {exc}")  # fmt: skip
        return super().on_invalid_task(body, message, exc)
