"""Running one attempt of a job inside a worker: claimed, run, recorded.

The worker's consumer (transport.py) claims a job as it pops its message and hands
the claim over in a header; a message that came another way is claimed here (claim.lua).
The outcome is written back in one script (complete or fail), which is also the message's
ack. Celery's own retry, ETA and result machinery are not used: the message only says
"job X is due".
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from functools import lru_cache
from typing import Any

import structlog
from billiard.common import terminate_handler_fired
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task, shared_task
from django.conf import settings

from tasks import scripts
from tasks.enqueue import adopt
from tasks.errors import InvalidJobData, JobyardError, PermanentError
from tasks.job import Job
from tasks.options import JobOptions
from tasks.registry import JobType, dumps, get_job_type
from tasks.worker.claims import CLAIM_HEADER, ORIGIN, claim, completions, worker_name

log = structlog.get_logger("jobyard.jobs")


class JobTask(Task):
    """The Celery task class of every job type: a thin entry point into `execute`."""

    typing = False
    acks_late = True
    reject_on_worker_lost = True
    #: Records a run its pool process did not live to record (see losses.py).
    Request = "tasks.worker.losses:JobRequest"

    def run_job(self, args: tuple, kwargs: dict[str, Any]) -> None:
        declared = get_job_type(self.name)
        if self.request.origin != ORIGIN:
            # Sent the Celery way (delay(), send_task, Flower, beat): no job exists yet.
            try:
                if args:
                    raise InvalidJobData(
                        declared.name, [{"field": "(args)", "message": "pass parameters by name"}]
                    )
                adopt(declared.name, self.request.id, kwargs)
            except JobyardError as exc:
                log.error(
                    "job_rejected", job_id=self.request.id, job_type=declared.name, reason=str(exc)
                )
                return
        claimed = getattr(self.request, CLAIM_HEADER, None)
        execute(declared, self.request.id, worker_name(self.request.hostname), claimed)


def install_task(declared: JobType) -> None:
    """Register the Celery task of job type `declared`: a JobTask named after it.

    Called for every declaration (tasks.registry.on_declare, wired in tasks/apps.py), so
    the registry itself knows nothing of Celery's worker side.
    """

    def run_job(self: JobTask, *args: Any, **kwargs: Any) -> None:
        self.run_job(args, kwargs)

    shared_task(name=declared.name, base=JobTask, bind=True, ignore_result=True)(run_job)


@lru_cache(maxsize=1024)
def parse_opts(raw: str) -> JobOptions:
    """Stored options, parsed once per distinct value: jobs of one type mostly share one."""
    return JobOptions.model_validate_json(raw)


def retry_delay(job_opts: JobOptions, attempts_made: int, permanent: bool) -> int:
    """Milliseconds until the next attempt, or -1 when the job has failed for good.

    `attempts_made` counts the attempt that just failed.
    """
    if permanent or attempts_made >= (job_opts.attempts or 1):
        return -1
    backoff = job_opts.backoff
    if backoff is None:
        return 0
    return backoff.delay_for(attempts_made, scale=settings.JOBYARD["BACKOFF_SCALE"])


def _claim(declared: JobType, job_id: str, worker: str) -> dict[str, Any] | str:
    """Claim `job_id` here: its message came by a transport that did not (see transport.py).

    Returns the claim, shaped like the transport's CLAIM_HEADER, or why the job must not run.
    """
    claimed = claim(declared.queue, job_id, worker)
    if isinstance(claimed, dict):
        return claimed
    # A duplicate delivery, a removed job, a paused queue or a rate limit: not run.
    log.debug("job_not_claimed", job_id=job_id, queue=declared.queue, outcome=claimed.outcome,
              state=claimed.detail)  # fmt: skip
    return claimed.outcome


def execute(
    declared: JobType, job_id: str, worker: str, claimed: dict[str, Any] | None = None
) -> str:
    """Run one attempt of `job_id`, claimed by the consumer (`claimed`) or claimed here.

    Returns what happened: completed, retrying, failed, lost (the lock went to another
    worker meanwhile), or why it did not run: missing, skip, paused, limited.
    """
    conf = settings.JOBYARD
    queue = declared.queue
    queue_conf = settings.JOBYARD_QUEUES[queue]
    if claimed is None:
        claim = _claim(declared, job_id, worker)
        if isinstance(claim, str):
            return claim
        claimed = claim
    # Held in this worker's buffer for a third of its lock (a prefetch above one): the
    # lock may have expired and the job run elsewhere. Renew it, or leave the job be.
    elif time.time() - claimed["takenAt"] > conf["LOCK_DURATION_MS"] / 3000 and (
        scripts.extend_locks([(queue, job_id, claimed["token"])])
    ):
        log.warning("job_lock_lost", job_id=job_id, job_type=declared.name, queue=queue)
        return "lost"
    token, opts = claimed["token"], claimed["opts"]
    job_opts = parse_opts(opts)
    job = Job(
        queue=queue, id=job_id, name=declared.name, data=json.loads(claimed["data"]),
        opts=json.loads(opts), state="active", attempts_made=claimed["attemptsMade"],
        created_at=claimed["createdAt"], worker=claimed["worker"], _token=token,
    )  # fmt: skip
    attempt = job.attempts_made + 1
    fields = {"job_id": job_id, "job_type": declared.name, "queue": queue, "attempt": attempt}
    log.info("job_start", **fields)
    _locks.hold(queue, job_id, token)
    started = time.monotonic()
    reason: str | None = None
    try:
        value = declared.func(job, **job.data)
    except SoftTimeLimitExceeded:
        reason, permanent = f"timed out after {job_opts.timeout} ms", False
        stack = traceback.format_exc()
    # A job's sys.exit() or KeyboardInterrupt ends its attempt, not the pool process; but a
    # SystemExit raised by the pool's own termination (a cold shutdown) must end the process.
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        if not isinstance(exc, Exception) and terminate_handler_fired():
            raise
        reason = describe(exc)
        permanent = isinstance(exc, (PermanentError, *declared.throws))
        stack = traceback.format_exc()
    else:
        try:
            returnvalue = dumps(value)
        except (TypeError, ValueError) as exc:  # no retry makes it JSON
            reason, permanent, stack = f"return value is not JSON: {exc}", True, ""
    finally:
        _locks.release(queue, job_id)
    duration_ms = round((time.monotonic() - started) * 1000, 3)

    if reason is None:
        keep, age = job_opts.retention(True, queue_conf["keep_completed"])
        done = scripts.Completion(queue, job_id, token, returnvalue, keep, age)
        if completions.defer(done, {**fields, "duration_ms": duration_ms}):
            return "completed"  # written (and logged) by the consumer's next take
        if not scripts.complete(done):
            log.warning("job_lock_lost", **fields, duration_ms=duration_ms)
            return "lost"
        log.info("job_complete", **fields, duration_ms=duration_ms)
        return "completed"

    fields["duration_ms"] = duration_ms
    return record_failure(queue, token, job_opts, reason, stack, permanent, fields)


def record_failure(
    queue: str, token: str, job_opts: JobOptions, reason: str, stack: str, permanent: bool,
    fields: dict[str, Any],
) -> str:  # fmt: skip
    """Record a failed attempt (fields name the job and attempt): 'retrying' or 'failed'
    per the job's policy, or 'lost' when `token` no longer holds the job."""
    delay = retry_delay(job_opts, fields["attempt"], permanent)
    keep, age = job_opts.retention(False, settings.JOBYARD_QUEUES[queue]["keep_failed"])
    outcome = scripts.fail(queue, fields["job_id"], token, reason, stack, delay, keep, age)
    if outcome is None:
        log.warning("job_lock_lost", **fields, reason=reason)
        return "lost"
    log.warning(
        "job_failed", **fields, reason=reason, permanent=permanent, outcome=outcome,
        retry_in_ms=delay if delay >= 0 else None,
    )  # fmt: skip
    return outcome


def describe(exc: BaseException) -> str:
    """A failure reason: `ValueError: bad`, `SystemExit(0)`, even when str(exc) raises."""
    try:
        text = str(exc)
    except Exception:
        text = "<str() of the exception failed>"
    name = type(exc).__name__
    return f"{name}: {text}" if isinstance(exc, Exception) else f"{name}({text})"


class _Locks:
    """The locks this process holds for its running jobs, renewed by one daemon thread.

    One thread per process (per pool child in prefork); it sends one script call every
    third of the lock duration while a job runs, and sleeps otherwise.
    """

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], str] = {}
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None

    def hold(self, queue: str, job_id: str, token: str) -> None:
        with self._mutex:
            self._held[(queue, job_id)] = token
            if self._pid != os.getpid():  # first job in this (possibly forked) process
                self._pid = os.getpid()
                threading.Thread(target=self._renew, name="jobyard-locks", daemon=True).start()
        self._wake.set()

    def release(self, queue: str, job_id: str) -> None:
        with self._mutex:
            self._held.pop((queue, job_id), None)

    def _renew(self) -> None:
        lock_ms = settings.JOBYARD["LOCK_DURATION_MS"]
        while True:
            self._wake.wait()
            time.sleep(lock_ms / 3000)
            with self._mutex:
                held = [(queue, job_id, token) for (queue, job_id), token in self._held.items()]
                if not held:
                    self._wake.clear()
                    continue
            try:
                lost = scripts.extend_locks(held)
            except Exception:  # Redis away: the next round tries again
                log.warning("job_lock_renewal_failed", exc_info=True)
                continue
            for job_id in lost:
                log.warning("job_lock_lost", job_id=job_id)


_locks = _Locks()
