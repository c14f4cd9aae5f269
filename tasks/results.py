"""Celery's result backend, answering from the job registry where Celery stored nothing.

Results of tasks sent the Celery way (delay(), apply_async(), canvas) are stored as Celery's
Redis backend stores them: chords, groups and `AsyncResult.get()` are Celery's own code. A
job enqueued the registry's way (enqueue(), the API, the CLI, beat) stores no Celery result
(its message says ignore_result: its result is in the registry already); for those, and for
any id Celery has no result for, the state comes from the registry:

    waiting / paused / delayed  -> PENDING (RETRY once an attempt failed)
    active                      -> STARTED
    completed                   -> SUCCESS, the job's return value
    failed                      -> FAILURE, JobFailed(job id, failed reason)

and, once the registry's retention removed the job, from the job archive in PostgreSQL (its
final state; a completed job's value is the archived one). Only an id neither knows is
PENDING, as Celery answers for any unknown id.

A waiter (`.get()`) is told of a registry job's completion on Celery's result channel
(complete_job in tasks/lua/prelude.lua publishes there), and checks the registry once a
second besides, for outcomes written where nothing publishes (a job failed as stalled).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend, ResultConsumer, SentinelBackend

from tasks import keys
from tasks.connection import get_redis
from tasks.errors import JobFailed
from tasks.job import Job, find_job

#: Registry states as Celery names them.
CELERY_STATE = {
    "waiting": states.PENDING, "paused": states.PENDING, "delayed": states.PENDING,
    "active": states.STARTED, "completed": states.SUCCESS, "failed": states.FAILURE,
}  # fmt: skip


def meta_from_job(job: Job) -> dict[str, Any]:
    """Celery's result meta for a registry job (see the module doc)."""
    state = CELERY_STATE.get(job.state or "", states.PENDING)
    if job.state == "delayed" and job.attempts_made:
        state = states.RETRY
    result: Any = None
    if state == states.SUCCESS:
        result = job.returnvalue
    elif state in (states.FAILURE, states.RETRY):
        result = JobFailed(job.id, job.failed_reason or "")
    done = job.finished_on if state in states.READY_STATES else None
    return {
        "task_id": job.id, "status": state, "result": result,
        "traceback": job.stacktrace[-1] if job.stacktrace and state == states.FAILURE else None,
        "children": [],
        "date_done": datetime.fromtimestamp(done / 1000, UTC) if done else None,
    }  # fmt: skip


def meta_from_archive(task_id: str) -> dict[str, Any] | None:
    """The final state of a job the registry no longer holds, from the archive; or None."""
    from tasks.models import JobRecord  # Django's models: only once the apps are loaded

    try:
        record = JobRecord.objects.filter(job_id=task_id).order_by("-created_at").first()
    except Exception:  # no database here (a tool, a lost connection): as Celery would answer
        return None
    if record is None or record.state not in ("completed", "failed"):
        return None
    completed = record.state == "completed"
    return {
        "task_id": task_id,
        "status": states.SUCCESS if completed else states.FAILURE,
        "result": record.returnvalue if completed else JobFailed(task_id, record.failed_reason),
        "traceback": None, "children": [], "date_done": record.finished_on,
    }  # fmt: skip


#: A task sent the Celery way has its outcome in the registry a moment before Celery
#: stores it (tasks.worker.tracking): within this window, the registry's word waits for
#: Celery's, which carries the task's own exception.
CELERY_STORE_WINDOW_MS = 5_000


def _celery_stores_soon(job: Job) -> bool:
    if job.state not in ("completed", "failed") or not job.finished_on:
        return False
    if time.time() * 1000 - job.finished_on > CELERY_STORE_WINDOW_MS:
        return False
    return bool(get_redis().hexists(keys.job(job.queue, job.id), "msg"))


class JobyardResultConsumer(ResultConsumer):
    def _wait_for_pending(self, result: Any, timeout: float | None = None,
                          on_interval: Any = None, on_message: Any = None,
                          **kwargs: Any) -> Any:  # fmt: skip
        def check() -> None:
            self.on_wait_for_pending(result, timeout=timeout, **kwargs)
            if on_interval:
                on_interval()

        return super()._wait_for_pending(result, timeout=timeout, on_interval=check,
                                         on_message=on_message, **kwargs)  # fmt: skip


class JobyardBackend(RedisBackend):
    ResultConsumer = JobyardResultConsumer
    #: Records a tracked plain task's outcome in the registry (set by tasks.worker.tracking
    #: in workers): called before Celery stores the result, so that whoever sees the result
    #: finds the registry agreeing. Arguments: request, state, value, traceback.
    record_outcome: Callable[[Any, str, Any, str | None], None] | None = None

    def _record(self, request: Any, state: str, value: Any, traceback: Any = None) -> None:
        if self.record_outcome is not None and request is not None:
            self.record_outcome(request, state, value, traceback)

    def mark_as_done(self, task_id: str, result: Any, request: Any = None,
                     store_result: bool = True, state: str = states.SUCCESS) -> Any:  # fmt: skip
        self._record(request, state, result)
        return super().mark_as_done(task_id, result, request, store_result, state)

    def mark_as_failure(self, task_id: str, exc: Any, traceback: Any = None, request: Any = None,
                        store_result: bool = True, call_errbacks: bool = True,
                        state: str = states.FAILURE) -> Any:  # fmt: skip
        self._record(request, state, exc, traceback)
        return super().mark_as_failure(task_id, exc, traceback, request, store_result,
                                       call_errbacks, state)  # fmt: skip

    def mark_as_retry(self, task_id: str, exc: Any, traceback: Any = None, request: Any = None,
                      store_result: bool = True, state: str = states.RETRY) -> Any:  # fmt: skip
        self._record(request, state, exc, traceback)
        return super().mark_as_retry(task_id, exc, traceback, request, store_result, state)

    def get_task_meta(self, task_id: str, cache: bool = True) -> dict[str, Any]:
        # Not in _get_task_meta_for: Celery's own store reads that to keep a SUCCESS from
        # being overwritten, and the registry says completed before Celery stores.
        meta = super().get_task_meta(task_id, cache)
        if meta.get("status") != states.PENDING:
            return meta
        job = find_job(task_id)
        if job is not None:
            if _celery_stores_soon(job):
                return {**meta, "status": states.STARTED}
            return meta_from_job(job)
        return meta_from_archive(task_id) or meta


class JobyardSentinelBackend(JobyardBackend, SentinelBackend):
    """JobyardBackend on the master the sentinels name: the broker's `sentinel://` URLs (the
    master's password and database in each) and result_backend_transport_options
    (master_name, the sentinels' own options), as Celery's SentinelBackend reads them."""
