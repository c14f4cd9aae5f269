"""Running one attempt of a job inside a worker: claimed, run, recorded.

The worker's consumer (transport.py) claims a job as it pops its message and hands
the claim over in a header; a message that came another way is claimed here (claim.lua).
The outcome is written back in one script (complete or fail), which is also the message's
ack, and Celery is told the same outcome (JobTask): the registry decides retries and delays,
Celery records the task's state, result and signals as it always does.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
import uuid
from functools import lru_cache
from typing import Any, NamedTuple

import structlog
from billiard.common import terminate_handler_fired
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task, shared_task
from celery.exceptions import Ignore, Retry
from celery.result import AsyncResult
from django.conf import settings

from tasks import keys, scripts, tracing
from tasks.connection import get_redis
from tasks.enqueue import adopt
from tasks.errors import (
    InvalidJobData,
    JobCancelled,
    JobFailed,
    JobyardError,
    PermanentError,
    RetryAfter,
)
from tasks.job import Job, get_job
from tasks.options import MAX_DELAY_MS, JobOptions, shown
from tasks.registry import JobType, dumps, get_job_type
from tasks.worker.claims import CLAIM_HEADER, claim, completions, job_address, worker_name

log = structlog.get_logger("jobyard.jobs")
#: The options of a job that has none of its own (a plain Celery task): the queue's retention.
PLAIN_OPTIONS = JobOptions()


class JobTask(Task):
    """The Celery task class of every job type: a thin entry point into `execute`.

    Celery sees each attempt as it ended: a success returns the job's value (stored as the
    task's result, passed along a chain), a failure raises the job's exception (FAILURE:
    task_failure, link_error, a chain stops), a failure with a retry ahead raises Retry
    (RETRY: task_retry; the registry sends the job again when due), a copy that must not
    run is ignored (IGNORED).
    """

    typing = False
    acks_late = True
    reject_on_worker_lost = True
    #: Results of jobs sent the Celery way (delay(), canvas) are stored; a job enqueued the
    #: registry's way says ignore_result in its message: its result lives in the registry.
    ignore_result = False
    #: Records a run its pool process did not live to record (see losses.py).
    Request = "tasks.worker.losses:JobRequest"

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Celery's apply_async, with the job type's parameters validated first: bad ones
        raise InvalidJobData here, at the caller, and nothing is sent."""
        if args:
            raise InvalidJobData(self.name, [_POSITIONAL])
        get_job_type(self.name).validate(kwargs)
        return super().apply_async(args, kwargs, **options)

    def AsyncResult(self, task_id: str, **kwargs: Any) -> JobResult:  # noqa: N802 (Celery's)
        return JobResult(task_id, backend=self.backend, task_name=self.name, app=self._get_app(),
                         queue=get_job_type(self.name).queue, **kwargs)  # fmt: skip

    def run_job(self, args: tuple, kwargs: dict[str, Any]) -> Any:
        declared = get_job_type(self.name)
        worker = worker_name(self.request.hostname)
        claimed = getattr(self.request, CLAIM_HEADER, None)
        if claimed is None and job_address(vars(self.request)) is None:
            # A message no transport registered (written to Redis by another tool): the job
            # is made now, or recorded failed with the reason it cannot run.
            adopt_message(declared, self.request.id, args, kwargs, worker)
        attempt = execute(declared, self.request.id, worker, claimed)
        if attempt.outcome == "completed":
            return attempt.value
        if attempt.outcome == "failed" and attempt.error is not None:
            raise attempt.error
        if attempt.outcome == "retrying":
            raise Retry(str(attempt.error), exc=attempt.error, when=attempt.retry_in_ms / 1000)
        raise Ignore()  # not run here: lost, a duplicate copy, paused, over the rate limit


_POSITIONAL = {"field": "(args)", "message": "pass parameters by name"}


class JobResult(AsyncResult):
    """What a job type's delay() returns: Celery's AsyncResult of the job's task, and `.job`,
    the registry's view of the job (state, progress, attempts), read on each access."""

    def __init__(self, task_id: str, *args: Any, queue: str, **kwargs: Any) -> None:
        super().__init__(task_id, *args, **kwargs)
        self.job_queue = queue

    @property
    def job(self) -> Job | None:
        return get_job(self.job_queue, self.id)


def adopt_message(
    declared: JobType, job_id: str, args: tuple, kwargs: dict[str, Any], worker: str
) -> None:
    """Register a job whose message came by no registering transport, or record it failed
    with the reason it cannot run (positional or invalid parameters) and raise that."""
    try:
        if args:
            raise InvalidJobData(declared.name, [_POSITIONAL])
        adopt(declared.name, job_id, kwargs)
    except JobyardError as exc:
        record_unrunnable(declared.queue, job_id, declared.name, {"args": args, "kwargs": kwargs},
                          worker, str(exc))  # fmt: skip
        raise


def record_unrunnable(
    queue: str, job_id: str, name: str, data: Any, worker: str, reason: str
) -> None:
    """A message no worker can run (bad parameters, an unreadable body) becomes a failed job
    whose reason names the cause: seen in the admin and the API, never silently dropped."""
    try:
        encoded = dumps(data)
    except (TypeError, ValueError):
        encoded = dumps({"unreadable": repr(data)[:1000]})
    new = scripts.NewJob(job_id, name, encoded, "{}", 4, "[null, null]", 0, 1)
    scripts.enqueue(queue, [new], publish=False)
    token = uuid.uuid4().hex
    if isinstance(scripts.claim(queue, job_id, worker, token), scripts.Claim):
        fields = {"job_id": job_id, "job_type": name, "queue": queue, "attempt": 1}
        record_failure(queue, token, PLAIN_OPTIONS, reason, "", -1, fields)


def install_task(declared: JobType) -> None:
    """Register the Celery task of job type `declared`: a JobTask named after it.

    Called for every declaration (tasks.registry.on_declare, wired in tasks/apps.py), so
    the registry itself knows nothing of Celery's worker side.
    """

    def run_job(self: JobTask, *args: Any, **kwargs: Any) -> Any:
        return self.run_job(args, kwargs)

    shared_task(name=declared.name, base=JobTask, bind=True)(run_job)


@lru_cache(maxsize=1024)
def parse_opts(raw: str) -> JobOptions:
    """Stored options, parsed once per distinct value: jobs of one type mostly share one."""
    return JobOptions.model_validate_json(raw)


def _trace_of(queue: str, job_id: str) -> str | None:
    """The trace context stored with the job at enqueue (tasks/tracing.py): one HGET per
    run, and only with tracing on."""
    if not tracing.enabled():
        return None
    raw = get_redis().hget(keys.job(queue, job_id), "trace")
    return raw.decode() if raw else None


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


class Attempt(NamedTuple):
    """How one attempt ended: completed, retrying, failed, lost (the lock went to another
    worker meanwhile), or why it did not run: missing, skip, paused, limited, exhausted."""

    outcome: str
    #: The job's return value (completed).
    value: Any = None
    #: What made it fail (retrying, failed).
    error: BaseException | None = None
    retry_in_ms: int = -1


def execute(
    declared: JobType, job_id: str, worker: str, claimed: dict[str, Any] | None = None
) -> Attempt:
    """Run one attempt of `job_id`, claimed by the consumer (`claimed`) or claimed here."""
    conf = settings.JOBYARD
    queue = declared.queue
    queue_conf = settings.JOBYARD_QUEUES[queue]
    if claimed is None:
        claim = _claim(declared, job_id, worker)
        if isinstance(claim, str):
            return Attempt(claim)
        claimed = claim
    # Held in this worker's buffer for a third of its lock (a prefetch above one): the
    # lock may have expired and the job run elsewhere. Renew it, or leave the job be.
    elif time.time() - claimed["takenAt"] > conf["LOCK_DURATION_MS"] / 3000 and (
        scripts.extend_locks([(queue, job_id, claimed["token"])])
    ):
        log.warning("job_lock_lost", job_id=job_id, job_type=declared.name, queue=queue)
        return Attempt("lost")
    token, opts = claimed["token"], claimed["opts"]
    job_opts = parse_opts(opts)
    job = Job(
        queue=queue, id=job_id, name=declared.name, data=json.loads(claimed["data"]),
        opts=shown(job_opts), state="active", attempts_made=claimed["attemptsMade"],
        attempts=job_opts.attempts or 1,  # so a job can tell its last attempt
        created_at=claimed["createdAt"], worker=claimed["worker"], _token=token,
    )  # fmt: skip
    attempt = job.attempts_made + 1
    fields = {"job_id": job_id, "job_type": declared.name, "queue": queue, "attempt": attempt}
    log.info("job_start", **fields)
    _locks.hold(queue, job_id, token)
    started = time.monotonic()
    reason: str | None = None
    error: BaseException | None = None
    try:
        with tracing.run_span(declared.name, queue, job_id, attempt, _trace_of(queue, job_id)):
            value = declared.func(job, **job.data)
    except SoftTimeLimitExceeded as exc:
        reason, permanent, error = f"timed out after {job_opts.timeout} ms", False, exc
        stack = traceback.format_exc()
    # A job's sys.exit() or KeyboardInterrupt ends its attempt, not the pool process; but a
    # SystemExit raised by the pool's own termination (a cold shutdown) must end the process.
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        if not isinstance(exc, Exception) and terminate_handler_fired():
            raise
        reason = describe(exc)
        # A cancelled job is not retried (fail.lua says so too, whatever the job raised).
        permanent = isinstance(exc, (PermanentError, JobCancelled, *declared.throws))
        stack = traceback.format_exc()
        # Celery is handed an Exception: a job's SystemExit must not end the pool process.
        error = exc if isinstance(exc, Exception) else JobFailed(job_id, reason)
    else:
        try:
            returnvalue = dumps(value)
        except (TypeError, ValueError) as exc:  # no retry makes it JSON
            reason, permanent, stack = f"return value is not JSON: {exc}", True, ""
            error = JobFailed(job_id, reason)
    finally:
        _locks.release(queue, job_id)
    duration_ms = round((time.monotonic() - started) * 1000, 3)
    if reason is None and overran(job_opts, duration_ms):
        reason, permanent, stack = (
            f"timed out after {job_opts.timeout} ms (ran {duration_ms:.0f} ms; the "
            f"{pool.name} pool cannot stop a running job, so the attempt failed when it "
            "returned)", False, "",
        )  # fmt: skip
        error = JobFailed(job_id, reason)

    if reason is None:
        keep, age = job_opts.retention(True, queue_conf["keep_completed"])
        done = scripts.Completion(queue, job_id, token, returnvalue, keep, age)
        if completions.defer(done, {**fields, "duration_ms": duration_ms}):
            return Attempt("completed", value)  # written (and logged) by the next take
        written = scripts.complete(done)
        if written == scripts.COMPLETED_CANCELLED:  # returned after a cancel: failed so
            log.warning("job_cancelled", **fields, duration_ms=duration_ms)
            return Attempt("failed", error=JobCancelled(job_id))
        if not written:
            log.warning("job_lock_lost", **fields, duration_ms=duration_ms)
            return Attempt("lost")
        log.info("job_complete", **fields, duration_ms=duration_ms)
        return Attempt("completed", value)

    fields["duration_ms"] = duration_ms
    delay = retry_delay(job_opts, attempt, permanent)
    if delay >= 0 and isinstance(error, RetryAfter):  # the server said when to come back
        delay = max(delay, min(error.delay_ms, MAX_DELAY_MS))
    outcome = record_failure(queue, token, job_opts, reason, stack, delay, fields)
    return Attempt(outcome, error=error, retry_in_ms=delay)


class _Pool:
    """The pool this worker process runs jobs in (`-P`), told by the worker at start-up
    (maintenance.py); outside a worker, one that enforces time limits."""

    name = "prefork"
    #: prefork, gevent and eventlet stop a job at its time limit (Celery's soft limit raises
    #: in the job, the hard one ends it); threads and solo cannot: a thread cannot be
    #: stopped from outside, so there the attempt fails when it returns past its timeout.
    enforces_time_limits = True


pool = _Pool()

#: Celery's pool modules that stop a job at its time limit.
_STOPPING_POOLS = ("prefork", "gevent", "eventlet")


def set_pool(name: str) -> None:
    """Record the worker's pool: `threads`, `gevent`, `solo`, `prefork`, or the module
    of a custom pool class."""
    pool.name = name
    pool.enforces_time_limits = name in _STOPPING_POOLS


def overran(job_opts: JobOptions, duration_ms: float) -> bool:
    """A successful attempt that ran past its timeout in a pool that could not stop it."""
    return (
        bool(job_opts.timeout)
        and not pool.enforces_time_limits
        and (duration_ms > job_opts.timeout)
    )


def record_failure(
    queue: str, token: str, job_opts: JobOptions, reason: str, stack: str, delay: int,
    fields: dict[str, Any], expired: bool = False,
) -> str:  # fmt: skip
    """Record a failed attempt (fields name the job and attempt): 'retrying' in `delay` ms,
    'failed' (delay -1), or 'lost' when `token` no longer holds the job. `expired`: its
    Celery message was past its `expires` (counted as such in /metrics)."""
    keep, age = job_opts.retention(False, settings.JOBYARD_QUEUES[queue]["keep_failed"])
    outcome = scripts.fail(
        queue, fields["job_id"], token, reason, stack, delay, keep, age, expired=expired
    )
    if outcome is None:
        log.warning("job_lock_lost", **fields, reason=reason)
        return "lost"
    log.warning(
        "job_failed", **fields, reason=reason, outcome=outcome,
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
