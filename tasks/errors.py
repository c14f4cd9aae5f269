"""The platform's errors: each says what is wrong and names the field or option at fault.

Each keeps its constructor's arguments as `args` (and its message as str()), so that Celery
can store one as a task's failure and raise the same error again from AsyncResult.get().
"""

from __future__ import annotations

from typing import Any


class JobyardError(Exception):
    """Base class of every error the job platform raises on purpose."""

    def __init__(self, *args: Any, message: str | None = None) -> None:
        super().__init__(*args)
        self._message = message

    def __str__(self) -> str:
        return self._message if self._message is not None else super().__str__()


class UnknownJobType(JobyardError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            name, known,
            message=f"unknown job type {name!r}; known job types: {', '.join(known) or 'none'}",
        )  # fmt: skip
        self.name = name
        self.known = known


class InvalidJobData(JobyardError, ValueError):
    """Data that fails the job type's parameter schema. `errors` lists {field, message}."""

    def __init__(self, job_type: str, errors: list[dict[str, str]]) -> None:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(job_type, errors, message=f"invalid data for {job_type!r}: {detail}")
        self.job_type = job_type
        self.errors = errors


class InvalidJobOptions(JobyardError, ValueError):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(errors, message=f"invalid job options: {detail}")
        self.errors = errors


class InvalidFlow(JobyardError, ValueError):
    """A flow's tree is malformed: `errors` lists {field, message}, each field a path into
    the tree (`children[2].opts.attempts`)."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(errors, message=f"invalid flow: {detail}")
        self.errors = errors


class UnknownQueue(JobyardError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name, known, message=f"unknown queue {name!r}; queues: {', '.join(known)}")
        self.name = name


class InvalidJobState(JobyardError):
    """The operation does not apply to the job's current state (retry a completed job...)."""


class PermanentError(Exception):
    """Raise from a job to fail it at once: no retry would fix this."""


class RetryAfter(Exception):
    """Raise from a job to fail this attempt and retry no sooner than `delay_ms` from now.

    The job type's retry policy still decides whether there is a next attempt, and its
    back-off still applies: the wait is the longer of the back-off and `delay_ms` (capped
    at the platform's longest delay). For a server that said when to come back (an HTTP
    429/503 with `Retry-After`).
    """

    def __init__(self, message: str, delay_ms: int) -> None:
        super().__init__(message, delay_ms)
        self.delay_ms = max(0, int(delay_ms))

    def __str__(self) -> str:
        return str(self.args[0])


class JobCancelled(JobyardError):
    """Raised inside a running job that was cancelled (Job.cancel, the API, the CLI, the
    admin): by `job.update_progress()` and `job.log()`, or by the job itself when it sees
    `job.cancelled`. The job then fails with reason "cancelled", with no retry."""

    def __init__(self, job_id: str = "") -> None:
        super().__init__(job_id, message=f"job {job_id} was cancelled" if job_id else "cancelled")
        self.job_id = job_id


class JobFailed(JobyardError):
    """wait_until_finished() or AsyncResult.get(): the job failed; `reason` is its failedReason."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(job_id, reason, message=f"job {job_id} failed: {reason}")
        self.job_id = job_id
        self.reason = reason


class WaitTimeout(JobyardError, TimeoutError):
    pass
