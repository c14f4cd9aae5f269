"""Ending cancelled jobs that do not stop by themselves: the worker's main process kills the
pool process running one once its grace period is over (JOBYARD_CANCEL_GRACE_MS).

Cancelling is cooperative first (tasks/lua/cancel.lua sets `cancelRequested` on the job; the
job sees `job.cancelled`, and JobCancelled at its next `update_progress` or `log`). A job that
ignores it (a long sleep, a C call, a loop that never reports) is ended as Celery's
`revoke(terminate=True)` ends a task: the pool process running it is killed. SIGKILL rather
than Celery's default SIGTERM: a job that catches SystemExit or BaseException would outlive
a SIGTERM, and it has had its grace period. The pool replaces the process and the worker
keeps serving; the run is recorded as failed "cancelled" (never a retry) right after the
kill, as losses.py records a lost process.

Only the prefork pool runs jobs in processes it can kill. With -P solo or threads a running
job cannot be ended from outside: it is logged once, and the job fails "cancelled" when its
function returns or raises (complete.lua and fail.lua see the request).
"""

from __future__ import annotations

import signal
from typing import Any

import structlog
from celery.concurrency.prefork import TaskPool as PreforkPool
from django.conf import settings

from tasks import keys
from tasks.connection import get_redis
from tasks.worker.losses import record_loss, running_claims

log = structlog.get_logger("jobyard.jobs")


class CancelWatch:
    """One step per maintenance round: find this worker's running jobs that were cancelled
    over the grace period ago, and kill the pool processes running them.

    Costs one pipelined round trip per round while this worker runs claimed jobs, none while
    it is idle.
    """

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.can_terminate = isinstance(pool, PreforkPool)
        #: (queue, job id, token) already killed or reported, so each is acted on once.
        self._done: set[tuple[str, str, str]] = set()

    def step(self) -> list[str]:
        """The ids of the jobs whose process was killed (or reported unkillable) now."""
        running = running_claims()
        if not running:
            self._done.clear()
            return []
        pipe = get_redis().pipeline(transaction=False)
        pipe.time()
        for _request, queue, job_id, _token in running:
            pipe.hmget(keys.job(queue, job_id), "token", "cancelRequested")
        (seconds, micros), *fields = pipe.execute()
        now_ms = seconds * 1000 + micros // 1000
        grace = settings.JOBYARD["CANCEL_GRACE_MS"]
        acted = []
        current = set()
        for (request, queue, job_id, token), (held_by, asked) in zip(running, fields, strict=True):
            current.add((queue, job_id, token))
            if held_by is None or held_by.decode() != token or asked is None:
                continue
            if now_ms - int(asked) < grace or (queue, job_id, token) in self._done:
                continue
            self._done.add((queue, job_id, token))
            acted.append(job_id)
            self._end(request, queue, job_id, now_ms - int(asked))
        self._done &= current
        return acted

    def _end(self, request: Any, queue: str, job_id: str, waited_ms: int) -> None:
        fields = {"job_id": job_id, "queue": queue, "waited_ms": waited_ms}
        if not self.can_terminate or not request.worker_pid:
            log.warning("job_cancel_cannot_terminate", **fields,
                        pool=type(self.pool).__module__,
                        detail="it fails 'cancelled' when its function returns")  # fmt: skip
            return
        request._jobyard_cancelled = True  # losses.py records the run as cancelled
        log.warning("job_cancel_terminating", **fields, pid=request.worker_pid)
        # billiard ignores a process that ended meanwhile (its outcome is recorded already).
        self.pool.terminate_job(request.worker_pid, signal.SIGKILL)
        # Recorded now rather than when the pool notices its process is gone (a second or
        # more on a loaded host): the job ends within the grace. on_failure skips it then.
        record_loss(request, "cancelled", permanent=True)
