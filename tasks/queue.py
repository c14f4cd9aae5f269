"""A queue's view of the registry: counts, listings, dead letters, pause, clean."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from tasks import keys, scripts
from tasks.connection import get_redis
from tasks.errors import JobyardError
from tasks.job import Job, get_jobs
from tasks.metrics import queue_metrics
from tasks.registry import check_queue
from tasks.states import (
    ACTIVE_NOT_CLEANABLE,
    CLEANABLE,
    FINISHED,
    STATE_SET,
    STATES,
    counts_by_state,
)


class Queue:
    def __init__(self, name: str) -> None:
        self.name = check_queue(name)

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    def counts(self) -> dict[str, int]:
        """Jobs per state: seven O(1) reads in one round trip, whatever the queue holds."""
        pipe = get_redis().pipeline(transaction=False)
        for state in ("waiting", "active", "completed", "failed", "delayed"):
            pipe.zcard(keys.state(self.name, state))
        pipe.exists(keys.paused(self.name))
        pipe.zcard(keys.state(self.name, "waiting-children"))
        return counts_by_state(*pipe.execute())

    def is_paused(self) -> bool:
        return bool(get_redis().exists(keys.paused(self.name)))

    def get_jobs(self, states: list[str] | tuple[str, ...] = STATES, start: int = 0,
                 end: int = 49) -> list[Job]:  # fmt: skip
        """Jobs in `states`, state by state, positions start..end (inclusive) of the whole."""
        unknown = [s for s in states if s not in STATE_SET]
        if unknown or start < 0 or end < start:
            raise JobyardError(f"bad listing: states {unknown or states}, start {start}, end {end}")
        paused = self.is_paused()
        # A paused queue's waiting jobs are its paused jobs: list them under one name only.
        wanted = [
            s for s in dict.fromkeys(states) if s not in (("waiting",) if paused else ("paused",))
        ]
        client = get_redis()
        ids: list[str] = []
        offset, remaining = start, end - start + 1
        for state in wanted:
            if remaining <= 0:
                break
            key = keys.state(self.name, state)
            size = client.zcard(key)
            if offset >= size:
                offset -= size
                continue
            # Finished jobs list newest first; the others in the order they will run or ran.
            ranger = client.zrevrange if state in FINISHED else client.zrange
            found = [i.decode() for i in ranger(key, offset, offset + remaining - 1)]
            ids += found
            remaining -= len(found)
            offset = 0
        return get_jobs(self.name, ids, paused)

    def get_failed(self, start: int = 0, end: int = 49) -> list[Job]:
        """The dead-letter list: jobs that failed past their attempts, newest first."""
        return self.get_jobs(["failed"], start, end)

    def retry_failed(self) -> int:
        """Send every failed job again, each with a fresh attempt budget; how many."""
        total = 0
        while True:
            retried = scripts.retry(self.name)
            total += len(retried)
            if len(retried) < 1000:
                return total

    def remove(self, job_id: str) -> bool:
        (result,) = scripts.remove(self.name, [job_id])
        return result == scripts.REMOVED

    def clean(self, grace_ms: int, limit: int = 1000, state: str = "completed") -> list[str]:
        """Remove up to `limit` jobs in `state` older than `grace_ms`; the ids removed.

        Age is finishing time for completed and failed, due time for delayed, and the time
        they started waiting for waiting jobs. Active jobs are never cleaned.
        """
        if state == "active":
            raise JobyardError(f"clean: {ACTIVE_NOT_CLEANABLE}")
        if state not in CLEANABLE:
            raise JobyardError(f"clean: state must be one of {', '.join(CLEANABLE)}, not {state!r}")
        if grace_ms < 0 or limit < 1:
            raise JobyardError("clean: grace must be >= 0 and limit >= 1")
        return scripts.clean(self.name, grace_ms, limit, state)

    def recover_stalled(self, fail: bool = False) -> list[str]:
        """The safe fix for stuck active jobs: those whose lock expired (their worker is
        gone) are sent again now, as the workers' stalled check would do within seconds, or
        failed with `fail` (no retry). Jobs whose worker still holds the lock are left
        alone. Returns the ids recovered."""
        keep = settings.JOBYARD_QUEUES[self.name]["keep_failed"]
        return scripts.stalled(self.name, settings.JOBYARD["MAX_STALLED"], keep, fail=fail)

    def pause(self) -> None:
        """Every worker stops starting this queue's jobs; enqueues are still accepted."""
        scripts.pause(self.name)

    def resume(self) -> int:
        """Start the queue again; returns how many parked jobs were sent to workers."""
        return scripts.resume(self.name)

    def metrics(self) -> dict[str, Any]:
        return queue_metrics(self.name)
