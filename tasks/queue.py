"""A queue's view of the registry: counts, listings, dead letters, pause, clean."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from tasks import scripts
from tasks.connection import get_redis
from tasks.errors import JobyardError
from tasks.job import STATES, Job, get_jobs
from tasks.registry import check_queue

#: Registry set per state; `paused` jobs are the waiting jobs of a paused queue.
_SETS = {"waiting": "wait", "paused": "wait", "delayed": "delayed", "active": "active",
         "completed": "completed", "failed": "failed"}  # fmt: skip
#: Finished jobs list newest first; the others in the order they will run or ran.
_NEWEST_FIRST = ("completed", "failed")


def counts_by_state(waiting: int, active: int, completed: int, failed: int, delayed: int,
                    paused: int | bool) -> dict[str, int]:  # fmt: skip
    """The six counts; a paused queue's waiting jobs count as paused (its `wait` set holds both)."""
    return {
        "waiting": 0 if paused else waiting,
        "active": active,
        "completed": completed,
        "failed": failed,
        "delayed": delayed,
        "paused": waiting if paused else 0,
    }


class Queue:
    def __init__(self, name: str) -> None:
        self.name = check_queue(name)

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    def _maxlen(self) -> int:
        return settings.JOBYARD["EVENTS_MAXLEN"]

    def counts(self) -> dict[str, int]:
        """Jobs per state: six O(1) reads in one round trip, whatever the queue holds."""
        pipe = get_redis().pipeline(transaction=False)
        for name in ("wait", "active", "completed", "failed", "delayed"):
            pipe.zcard(scripts.state_key(self.name, name))
        pipe.exists(scripts.state_key(self.name, "paused"))
        return counts_by_state(*pipe.execute())

    def is_paused(self) -> bool:
        return bool(get_redis().exists(scripts.state_key(self.name, "paused")))

    def get_jobs(self, states: list[str] | tuple[str, ...] = STATES, start: int = 0,
                 end: int = 49) -> list[Job]:  # fmt: skip
        """Jobs in `states`, state by state, positions start..end (inclusive) of the whole."""
        unknown = [s for s in states if s not in _SETS]
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
            key = scripts.state_key(self.name, _SETS[state])
            size = client.zcard(key)
            if offset >= size:
                offset -= size
                continue
            ranger = client.zrevrange if state in _NEWEST_FIRST else client.zrange
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
            retried = scripts.run("retry", self.name, self._maxlen())
            total += len(retried)
            if len(retried) < 1000:
                return total

    def remove(self, job_id: str) -> bool:
        (result,) = scripts.run("remove", self.name, self._maxlen(), job_id)
        return result == 1

    def clean(self, grace_ms: int, limit: int = 1000, state: str = "completed") -> list[str]:
        """Remove up to `limit` jobs in `state` older than `grace_ms`; the ids removed.

        Age is finishing time for completed and failed, due time for delayed, and the time
        they started waiting for waiting jobs. Active jobs are never cleaned.
        """
        if state not in ("completed", "failed", "delayed", "waiting", "paused"):
            raise JobyardError(
                f"clean: state must be completed, failed, delayed, waiting or paused, not {state!r}"
            )
        if grace_ms < 0 or limit < 1:
            raise JobyardError("clean: grace must be >= 0 and limit >= 1")
        removed = scripts.run("clean", self.name, grace_ms, limit, _SETS[state])
        return [i.decode() for i in removed]

    def pause(self) -> None:
        """Every worker stops starting this queue's jobs; enqueues are still accepted."""
        scripts.run("pause", self.name, self._maxlen(), "pause")

    def resume(self) -> int:
        """Start the queue again; returns how many parked jobs were sent to workers."""
        return scripts.run("pause", self.name, self._maxlen(), "resume")

    def metrics(self) -> dict[str, Any]:
        from tasks.metrics import queue_metrics

        return queue_metrics(self.name)
