"""When a job's run ends without the job saying how: a dead pool process, a hard time limit,
a cut-off at shutdown. The worker's main process outlives these, knows the cause, and holds
each running job's claim (its message's header), so it records the attempt itself, with the
real cause, and the job's retry policy decides what comes next.

Without this, such a job stayed active until its lock expired and was then run again as
"stalled", its cause lost and its attempt budget ignored. Only the death of the main process
itself (SIGKILL of the whole worker, a lost host) is still left to the stalled check.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from billiard.exceptions import WorkerLostError
from celery.exceptions import TimeLimitExceeded
from celery.worker import state
from celery.worker.request import Request

from tasks.registry import find_job_type
from tasks.worker.claims import CLAIM_HEADER, job_address
from tasks.worker.runner import parse_opts, record_failure, retry_delay

log = structlog.get_logger("jobyard.jobs")


def _live_claim(request: Request) -> dict[str, Any] | None:
    """The claim `request`'s message carries, unless its loss is recorded already (a time
    limit, then the process's end); None for a message claimed in the pool process."""
    if getattr(request, "_jobyard_loss", None):
        return None
    return (request.message.headers or {}).get(CLAIM_HEADER)


def record_loss(request: Request, reason: str, permanent: bool = False) -> str | None:
    """Record the attempt `request` was running as failed with `reason`; its outcome, or
    None for a message that carries no claim (claimed in the pool process: left to the
    stalled check, which is what happened to every lost job before)."""
    claim = _live_claim(request)
    declared = find_job_type(request.name)
    if not claim or declared is None:  # a plain task's loss is Celery's to handle
        return None
    request._jobyard_loss = reason
    fields = {"job_id": request.id, "job_type": declared.name, "queue": declared.queue,
              "attempt": claim["attemptsMade"] + 1}  # fmt: skip
    try:
        job_opts = parse_opts(claim["opts"])
        delay = retry_delay(job_opts, fields["attempt"], permanent=permanent)
        return record_failure(declared.queue, claim["token"], job_opts, reason, "", delay, fields)
    except Exception:  # Redis away: the lock expires and the stalled check takes over
        log.warning("job_loss_not_recorded", **fields, reason=reason, exc_info=True)
        return None


def _requests() -> set[Request]:
    """The requests this worker holds (reserved or running), read from another thread: the
    main thread may change the sets meanwhile, which makes an iteration raise; read again."""
    while True:
        try:
            return {*state.reserved_requests, *state.active_requests}
        except RuntimeError:  # "set changed size during iteration"
            continue


def held_claims() -> list[tuple[str, str, str]]:
    """(queue, job id, token) of every claimed job this worker holds, running or reserved."""
    held = []
    for request in _requests():
        claim = _live_claim(request)
        address = claim and job_address({**request.message.headers,
                                         "delivery_info": request.delivery_info})  # fmt: skip
        if address:
            held.append((*address, claim["token"]))
    return held


def running_claims() -> list[tuple[Request, str, str, str]]:
    """(request, queue, job id, token) of every claimed job a pool process is running."""
    running = []
    for request in _requests():
        claim = _live_claim(request) if request.time_start else None
        address = claim and job_address({**request.message.headers,
                                         "delivery_info": request.delivery_info})  # fmt: skip
        if address:
            running.append((request, *address, claim["token"]))
    return running


def cut_off_running(reason: str) -> int:
    """Record every job this worker is running as cut off (a shutdown's end); how many."""
    return sum(record_loss(r, reason) is not None for r in _requests() if r.time_start)


def _worker_lost_reason(exc: BaseException) -> str:
    # billiard: "Worker exited prematurely: signal 9 (SIGKILL) Job: 3." / "exitcode 70 ..."
    match = re.search(r"(signal \d+ \(\w+\)|exitcode -?\d+)", str(exc))
    return f"worker process exited with {match.group(1) if match else 'no exit status'}"


class JobRequest(Request):
    """Celery's request of a job type's message, in the worker's main process."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if not soft and not state.should_terminate:
            record_loss(self, f"hard time limit {timeout:g} s exceeded")
        super().on_timeout(soft, timeout)

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> Any:  # fmt: skip
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        if getattr(self, "_jobyard_cancelled", False):  # killed by cancels.py, which
            pass  # recorded the run as failed "cancelled" right after the kill
        elif isinstance(exc, WorkerLostError | SystemExit | KeyboardInterrupt):
            record_loss(self, _worker_lost_reason(exc))
        elif isinstance(exc, TimeLimitExceeded):
            record_loss(self, f"hard time limit {exc.args[0] if exc.args else '?'} s exceeded")
        return super().on_failure(exc_info, send_failed_event, return_ok)
