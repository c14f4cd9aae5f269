"""A job as the registry holds it, and what can be done to one."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from tasks import keys, scripts
from tasks.connection import get_redis
from tasks.errors import InvalidJobState, JobCancelled, JobFailed, WaitTimeout
from tasks.events import Event, job_events, last_event_id, recent_job_event
from tasks.options import expanded
from tasks.registry import check_queue, dumps
from tasks.states import FINISHED

#: The events that end a wait for a job.
_ENDINGS = ("completed", "failed", "removed")
#: A log line longer than this is cut (and says so): a runaway line must not fill Redis.
LOG_LINE_MAX = 10_000
#: The most lines one read of a job's log returns (Job.get_logs, the API's page).
LOGS_PAGE_MAX = 1000


@dataclass
class Job:
    queue: str
    id: str
    name: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    opts: dict[str, Any] = field(default_factory=dict)
    #: One of STATES; None for a job sent inside a transaction that has not committed yet.
    state: str | None = None
    progress: Any = 0
    returnvalue: Any = None
    attempts_made: int = 0
    attempts: int = 1
    failed_reason: str | None = None
    stacktrace: list[str] = field(default_factory=list)
    created_at: int | None = None
    processed_on: int | None = None
    finished_on: int | None = None
    delay_until: int | None = None
    worker: str | None = None
    stalled_count: int = 0
    priority: int | None = None
    #: A flow's child: its parent's `queue/id` (tasks.flows).
    parent: str | None = None
    #: When a cancel of this running job was asked (ms); None unless it was.
    cancel_requested_at: int | None = None
    _token: str | None = field(default=None, repr=False)

    @classmethod
    def from_hash(cls, queue: str, job_id: str, raw: dict[bytes, bytes], paused: bool) -> Job:
        h = {k.decode(): v.decode() for k, v in raw.items()}

        def num(name: str) -> int | None:
            return int(h[name]) if h.get(name) else None

        state = h.get("state")
        if state == "waiting" and paused:
            state = "paused"
        return cls(
            queue=queue, id=job_id, name=h.get("name", ""), data=json.loads(h.get("data", "{}")),
            opts=expanded(h.get("opts", "{}")), state=state,
            progress=json.loads(h["progress"]) if "progress" in h else 0,
            returnvalue=json.loads(h["returnvalue"]) if "returnvalue" in h else None,
            attempts_made=num("attemptsMade") or 0, attempts=num("attempts") or 1,
            failed_reason=h.get("failedReason"), stacktrace=json.loads(h.get("stacktrace", "[]")),
            created_at=num("createdAt"), processed_on=num("processedOn"),
            finished_on=num("finishedOn"),
            delay_until=num("delayUntil") if state == "delayed" else None,
            worker=h.get("worker"), stalled_count=num("stalledCount") or 0,
            priority=(num("priority") or 0) + 1, parent=h.get("parent"),
            cancel_requested_at=num("cancelRequested"),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The HTTP API's shape (camelCase, as the BullMQ-based seeds had it)."""
        return {
            "id": self.id, "name": self.name, "queue": self.queue, "state": self.state,
            "progress": self.progress, "data": self.data, "opts": self.opts,
            "returnvalue": self.returnvalue, "attemptsMade": self.attempts_made,
            "attempts": self.attempts, "failedReason": self.failed_reason,
            "stacktrace": self.stacktrace, "priority": self.priority, "worker": self.worker,
            "stalledCount": self.stalled_count, "schedule": self.opts.get("schedule"),
            "timestamps": {
                "createdAt": self.created_at, "processedOn": self.processed_on,
                "finishedOn": self.finished_on, "delayUntil": self.delay_until,
            },
        }  # fmt: skip

    # --- reading ---------------------------------------------------------------------

    def refresh(self) -> Job:
        fresh = get_job(self.queue, self.id)
        if fresh is None:
            raise InvalidJobState(f"job {self.id} no longer exists in queue {self.queue!r}")
        for name in self.__dataclass_fields__:
            if name != "_token":
                setattr(self, name, getattr(fresh, name))
        return self

    def wait_until_finished(self, timeout: float = 30.0) -> Any:
        """The job's return value once it completes; JobFailed once it fails for good.

        Built on the queue's event stream, not on polling: the last event id is read before
        the job, so a job that finishes between the two reads is not missed, and the result
        comes from the finishing event, so a job removed on completion still returns it.
        """
        cursor = last_event_id(self.queue)
        current = get_job(self.queue, self.id)
        if current is not None and current.state in FINISHED:
            self.refresh()
            if self.state == "failed":
                raise JobFailed(self.id, self.failed_reason or "")
            return self.returnvalue
        if current is None and self.state is not None:
            # Gone already (removed on completion before this wait began): its end may
            # still be on the stream.
            ended = recent_job_event(self.queue, self.id, _ENDINGS)
            if ended is None:
                raise InvalidJobState(f"job {self.id} no longer exists in queue {self.queue!r}")
            return self._ended(ended)
        for event in job_events(self.queue, self.id, cursor, timeout):
            if event.event in _ENDINGS:
                return self._ended(event)
        raise WaitTimeout(f"job {self.id} did not finish within {timeout:g} s")

    def _ended(self, event: Event) -> Any:
        if event.event == "completed":
            self.state = "completed"
            self.returnvalue = json.loads(event.fields["returnvalue"])
            return self.returnvalue
        if event.event == "failed":
            self.state = "failed"
            self.failed_reason = event.fields.get("failedReason", "")
            raise JobFailed(self.id, self.failed_reason)
        raise InvalidJobState(f"job {self.id} was removed")

    # --- a flow's parent (tasks.flows) ------------------------------------------------

    def children_values(self) -> dict[str, Any]:
        """Each completed child's return value, by `queue/id`: what a flow's parent reads
        while it runs. Kept on the parent's side, so a child's retention cannot lose one."""
        raw = get_redis().hgetall(keys.processed(self.queue, self.id))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def children_failures(self) -> dict[str, str]:
        """Each failed child's reason, by `queue/id`: the ignored failures
        (ignore_dependency_on_failure), or the one that failed this parent."""
        raw = get_redis().hgetall(keys.child_failures(self.queue, self.id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    # --- changing ----------------------------------------------------------------------

    def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        """Report progress (a number 0-100 or a JSON object) from inside the running job."""
        if self._token is None:
            raise InvalidJobState("update_progress() is for the job's own function while it runs")
        if isinstance(progress, bool) or not isinstance(progress, int | float | dict):
            raise ValueError("progress must be a number from 0 to 100 or a JSON object")
        if not isinstance(progress, dict) and not 0 <= progress <= 100:
            raise ValueError("progress must be between 0 and 100")
        written = scripts.progress(self.queue, self.id, self._token, dumps(progress))
        self.progress = progress
        if written == scripts.CANCEL_REQUESTED:
            raise JobCancelled(self.id)

    # --- logs and cancellation (issue 14) ----------------------------------------------

    def log(self, *lines: str) -> int:
        """Append lines to the job's log, from inside the running job; how many it holds.

        Kept with the job (the newest JOBYARD_LOG_LINES_KEPT lines) and removed with it.
        Raises JobCancelled, after writing, when the job was cancelled: stop there.
        """
        if self._token is None:
            raise InvalidJobState("log() is for the job's own function while it runs")
        if not lines:
            return 0
        cut = [_log_line(line) for line in lines]
        held, cancelled = scripts.log(self.queue, self.id, self._token, cut,
                                      settings.JOBYARD["LOG_LINES_KEPT"])  # fmt: skip
        if cancelled:
            raise JobCancelled(self.id)
        return max(held, 0)

    def get_logs(self, start: int = 0, end: int = -1) -> tuple[list[str], int]:
        """(lines start..end inclusive, oldest first; how many the job holds), as BullMQ's
        getJobLogs. `end` -1 is the last line; a page holds LOGS_PAGE_MAX lines at most."""
        if start < 0 or end < -1 or (end >= 0 and end < start):
            raise ValueError(f"bad range: start {start}, end {end}")
        if end == -1 or end > start + LOGS_PAGE_MAX - 1:
            end = start + LOGS_PAGE_MAX - 1
        return self._logs(start, end)

    def tail_logs(self, lines: int) -> tuple[list[str], int]:
        """(the newest `lines` log lines, oldest first; how many the job holds)."""
        return self._logs(-max(1, min(lines, LOGS_PAGE_MAX)), -1)

    def _logs(self, start: int, end: int) -> tuple[list[str], int]:
        pipe = get_redis().pipeline(transaction=False)
        pipe.lrange(keys.logs(self.queue, self.id), start, end)
        pipe.llen(keys.logs(self.queue, self.id))
        lines, count = pipe.execute()
        return [line.decode() for line in lines], count

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled (one Redis read each time): a long job checks it
        between steps and stops, raising JobCancelled, or returning; it fails "cancelled"."""
        return bool(get_redis().hexists(keys.job(self.queue, self.id), "cancelRequested"))

    def cancel(self) -> str:
        """Cancel the job: 'removed' when it had not started (waiting, paused or delayed:
        it is removed at once), 'cancelling' when it runs: it is asked to stop, and its
        worker ends it after JOBYARD_CANCEL_GRACE_MS; it then fails "cancelled", no retry.
        InvalidJobState when it has finished or no longer exists."""
        outcome, detail = scripts.cancel(self.queue, self.id)
        if outcome == "missing":
            raise InvalidJobState(f"job {self.id} no longer exists")
        if outcome == "finished":
            raise InvalidJobState(f"job {self.id} is already {detail}; nothing to cancel")
        if outcome == "cancelling":
            self.state, self.cancel_requested_at = "active", int(detail)
        else:
            self.state = None
        return outcome

    def promote(self) -> None:
        """Run a delayed job now: it becomes waiting and is sent to the workers."""
        result = scripts.promote_job(self.queue, self.id)
        if result == 0:
            raise InvalidJobState(f"job {self.id} no longer exists")
        if result != 1:
            raise InvalidJobState(f"job {self.id} is {result}, not delayed: nothing to promote")
        self.refresh()

    def retry(self) -> None:
        """Send a failed job again, with a fresh attempt budget."""
        retried = scripts.retry(self.queue, [self.id])
        if not retried:
            raise InvalidJobState(f"job {self.id} is not failed (state: {self.state})")
        self.refresh()

    def remove(self) -> list[str]:
        """Remove the job in whatever state but active (its worker holds it).

        A flow's parent takes its pending children with it (waiting, delayed, or waiting
        for children of their own, which go too), as BullMQ does; an active child is left
        to finish, and children that finished stay under their retention. Returns the
        `queue/id` of each child removed with it (docs/flows.md, "Removing")."""
        removed = scripts.remove(self.queue, [self.id])
        (result,) = removed.codes
        if result == scripts.ACTIVE:
            raise InvalidJobState(f"job {self.id} is active; it can be removed once it finishes")
        if result == scripts.NOT_FOUND:
            raise InvalidJobState(f"job {self.id} no longer exists")
        self.state = None
        return removed.children


def _log_line(line: object) -> str:
    text = line if isinstance(line, str) else str(line)
    if len(text) > LOG_LINE_MAX:
        return text[:LOG_LINE_MAX] + f"... [cut: {len(text)} characters]"
    return text


def get_job(queue: str, job_id: str) -> Job | None:
    """The job `job_id` of `queue`, or None when there is none."""
    check_queue(queue)
    pipe = get_redis().pipeline(transaction=False)
    pipe.hgetall(keys.job(queue, job_id))
    pipe.exists(keys.paused(queue))
    raw, paused = pipe.execute()
    return Job.from_hash(queue, job_id, raw, bool(paused)) if raw else None


def find_job(job_id: str, queue: str | None = None) -> Job | None:
    """The job `job_id` of `queue`, or of the first queue (in settings order) that holds one.

    Ids are unique per queue, not across queues: a caller that knows the queue should say.
    """
    for name in [queue] if queue else settings.JOBYARD_QUEUES:
        job = get_job(name, job_id)
        if job is not None:
            return job
    return None


def get_jobs(queue: str, ids: list[str], paused: bool) -> list[Job]:
    pipe = get_redis().pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(keys.job(queue, job_id))
    return [
        Job.from_hash(queue, job_id, raw, paused)
        for job_id, raw in zip(ids, pipe.execute(), strict=True)
        if raw
    ]
