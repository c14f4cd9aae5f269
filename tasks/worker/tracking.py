"""Plain Celery tasks, tracked: each attempt's outcome, as Celery decided it, in the registry.

A plain task (`@shared_task`, any base class) runs exactly as Celery runs it: its retries,
result, signals and canvas are Celery's. Its message became a registry job when it was sent
(send.lua) and was claimed when the consumer took it (take.lua). In the process running the
task, task_prerun holds the claim's lock while it runs; the outcome goes to the registry
from the result backend's mark_as_* calls (tasks/results.py), before Celery stores the
result, or from task_postrun for outcomes no backend call carries:

- SUCCESS: completed, with the return value (JSON, or its repr when it has none);
- RETRY (`self.retry()`): the retry's message is already kept with the job (send.lua); the
  attempt is recorded as failed and the job is due again when that message asked
  (countdown/eta): a durable delay, not a message held in a worker's memory;
- FAILURE: failed for good, with the exception and its traceback;
- IGNORED after `self.replace()` (the attempt sent its own next run): handed back, due now;
- REJECTED: handed back when requeued, else failed;
- revoked or expired before running: failed, with reason "revoked" or "expired".

Job types (JobTask) record their outcome in runner.execute and are skipped here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import structlog
from celery import signals, states
from celery.exceptions import Reject
from django.conf import settings

from tasks import keys, scripts
from tasks.connection import get_redis
from tasks.registry import dumps
from tasks.worker.claims import (
    CLAIM_HEADER,
    Completions,
    claim,
    completions,
    job_address,
    worker_name,
)
from tasks.worker.runner import PLAIN_OPTIONS, JobTask, _locks, describe, record_failure

log = structlog.get_logger("jobyard.jobs")


class _Tracked:
    """What the attempt running in this process holds: its job and claim."""

    __slots__ = ("attempt", "queue", "started", "token")

    def __init__(self, queue: str, token: str, attempt: int) -> None:
        self.queue, self.token, self.attempt = queue, token, attempt
        self.started = time.monotonic()


@signals.task_prerun.connect
def _started(sender: Any = None, task_id: str = "", task: Any = None, **_: Any) -> None:
    if task is None or isinstance(task, JobTask):
        return
    request = task.request
    address = job_address(vars(request))
    if address is None:  # sent by a transport that does not register: not tracked
        return
    queue, job_id = address
    claimed = getattr(request, CLAIM_HEADER, None)
    if claimed is None:  # a consumer that does not claim (a global key prefix): claim here
        claimed = claim(queue, job_id, worker_name(request.hostname))
        if isinstance(claimed, scripts.NotClaimed):
            # Celery runs it regardless (at least once); the registry keeps its own state.
            log.warning("task_not_claimed", job_id=job_id, queue=queue, outcome=claimed.outcome)
            return
    request.jobyard_tracked = _Tracked(queue, claimed["token"], claimed["attemptsMade"] + 1)
    request.jobyard_held = (queue, job_id)
    _locks.hold(queue, job_id, claimed["token"])
    log.info("job_start", job_id=job_id, job_type=task.name, queue=queue,
             attempt=claimed["attemptsMade"] + 1)  # fmt: skip


def from_backend(request: Any, state: str, value: Any, traceback: Any = None) -> None:
    """The result backend's hook (tasks.results.JobyardBackend.record_outcome): the outcome
    goes to the registry first, then Celery stores the result."""
    _finish(request, state, value, str(traceback or ""))


@signals.task_postrun.connect
def _ended(sender: Any = None, task_id: str = "", task: Any = None, retval: Any = None,
           state: str | None = None, **_: Any) -> None:  # fmt: skip
    """Outcomes no backend call carries (IGNORED, REJECTED; any outcome with another result
    backend configured), and the lock released in every case."""
    request = getattr(task, "request", None)
    tracked: _Tracked | None = getattr(request, "jobyard_tracked", None)
    if tracked is not None:
        _finish(request, state, retval, "")
    if held := getattr(request, "jobyard_held", None):
        _locks.release(*held)


def _finish(request: Any, state: str | None, value: Any, stack: str) -> None:
    tracked: _Tracked | None = getattr(request, "jobyard_tracked", None)
    if tracked is None:
        return
    request.jobyard_tracked = None  # recorded once, by whichever hook comes first
    fields = {"job_id": request.id, "job_type": request.task, "queue": tracked.queue,
              "attempt": tracked.attempt,
              "duration_ms": round((time.monotonic() - tracked.started) * 1000, 3)}  # fmt: skip
    try:
        record(tracked, request.id, state, value, stack, fields)
    except Exception:  # Redis away: the lock expires and the stalled check runs it again
        log.warning("job_outcome_not_recorded", **fields, state=state, exc_info=True)


def record(tracked: _Tracked, job_id: str, state: str | None, value: Any, stack: str,
           fields: dict[str, Any]) -> str:  # fmt: skip
    """Write the attempt's outcome (Celery's `state`) to the registry; what it became."""
    queue, token = tracked.queue, tracked.token
    queue_conf = settings.JOBYARD_QUEUES[queue]
    if state == states.SUCCESS:
        keep, age = PLAIN_OPTIONS.retention(True, queue_conf["keep_completed"])
        done = scripts.Completion(queue, job_id, token, _json(value), keep, age)
        if completions.defer(done, fields):
            return "completed"
        written = scripts.complete(done)
        Completions.logged([(done, fields)], str(written))
        return {scripts.COMPLETED: "completed", scripts.COMPLETED_CANCELLED: "failed"}.get(
            written, "lost"
        )
    if state == states.RETRY:  # due again as the retry's own message says (send.lua)
        reason = describe(value) if isinstance(value, BaseException) else str(value)
        return _fail(queue, job_id, token, reason, stack, scripts.RETRY_AS_RESENT, fields)
    if state == states.IGNORED and get_redis().hexists(keys.job(queue, job_id), "resent"):
        return _hand_back(queue, job_id, token, "replaced", fields)
    if state == states.IGNORED:  # the task keeps its own state: the registry records done
        keep, age = PLAIN_OPTIONS.retention(True, queue_conf["keep_completed"])
        done = scripts.Completion(queue, job_id, token, "null", keep, age)
        return "completed" if scripts.complete(done) else "lost"
    if state == states.REJECTED and isinstance(value, Reject) and value.requeue:
        return _hand_back(queue, job_id, token, "rejected and requeued", fields)
    reason = describe(value) if isinstance(value, BaseException) else f"task {state}"
    return _fail(queue, job_id, token, reason, stack, -1, fields)


def _fail(queue: str, job_id: str, token: str, reason: str, stack: str, delay: int,
          fields: dict[str, Any], expired: bool = False) -> str:  # fmt: skip
    return record_failure(queue, token, PLAIN_OPTIONS, reason, stack, delay,
                          {**fields, "job_id": job_id}, expired=expired)  # fmt: skip


def _hand_back(queue: str, job_id: str, token: str, reason: str, fields: dict[str, Any]) -> str:
    outcome = scripts.hand_back(queue, job_id, token, 0, reason)
    log.info("job_handed_back", **fields, reason=reason, outcome=outcome)
    return outcome or "lost"


def _json(value: Any) -> str:
    """A return value as the registry stores it: JSON, or its repr when it has no JSON form
    (Celery's own serializer accepted it, or the task would have failed already)."""
    try:
        return dumps(value)
    except (TypeError, ValueError):
        return json.dumps(repr(value)[:10_000])


@signals.task_revoked.connect
def _revoked(sender: Any = None, request: Any = None, terminated: bool = False,
             expired: bool = False, **_: Any) -> None:  # fmt: skip
    """A job revoked (or expired) before or while running ends failed, saying which: its
    claim is in the message it came with, held by this worker's main process."""
    fields = vars(request) if request is not None else {}
    claimed = fields.get(CLAIM_HEADER)
    address = job_address(fields)
    if not claimed or address is None:
        return
    queue, job_id = address
    reason = "expired" if expired else "revoked"
    try:
        _fail(queue, job_id, claimed["token"], reason, "", -1,
              {"job_id": job_id, "job_type": fields.get("task"), "queue": queue},
              expired=expired)  # fmt: skip
    except Exception:
        log.warning("job_outcome_not_recorded", job_id=job_id, reason=reason, exc_info=True)
