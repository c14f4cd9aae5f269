"""Claiming: how a job becomes this worker's to run, and how its success is written back.

A job runs only once it is claimed: the registry makes a waiting job active under a lock
held by a token (claim_job in tasks/lua/prelude.lua). The consumer (transport.py) claims as
it pops a message; the runner claims a message that came another way. Either way the claim
travels with the message in the CLAIM_HEADER, and the job's complete/fail script is its ack.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping
from time import time
from typing import Any

import structlog

from tasks import scripts
from tasks.connection import process_name
from tasks.messages import ORIGIN

#: The header carrying a claim from the consumer to the runner.
CLAIM_HEADER = "jobyard_claim"

log = structlog.get_logger("jobyard.jobs")

_node_name: str | None = None


#: The header marking a message sent the Celery way as registry job `queue/id` (send.lua).
JOB_HEADER = "jobyard_job"


def job_address(headers: Mapping[str, Any]) -> tuple[str, str] | None:
    """(queue, job id) of the registry job a message carries, from its headers (or a Celery
    request's fields, which hold them), or None for a message no transport registered."""
    marked = headers.get(JOB_HEADER)
    if isinstance(marked, str) and "/" in marked:
        queue, _, job_id = marked.partition("/")
        return queue, job_id
    if headers.get("origin") == ORIGIN:
        info = headers.get("delivery_info") or {}
        return info.get("routing_key"), headers.get("id")
    return None


def set_node_name(name: str) -> None:
    """Celery's node name (`-n`) of this worker, once it is set up (see maintenance.py)."""
    global _node_name
    _node_name = name


def worker_name(hostname: str | None = None) -> str:
    """The name a claim records as the job's worker: node name and pid of this process."""
    return process_name(hostname or _node_name)


def claim_header(token: str, worker: str, claimed: scripts.Claim) -> dict[str, Any]:
    """What a claim hands the runner in the CLAIM_HEADER."""
    return {
        "token": token, "worker": worker, "data": claimed.data, "opts": claimed.opts,
        "attemptsMade": claimed.attempts_made, "createdAt": claimed.created_at,
        "takenAt": time(),
    }  # fmt: skip


def claim(queue: str, job_id: str, worker: str) -> dict[str, Any] | scripts.NotClaimed:
    """Claim a job whose message this process already holds: the CLAIM_HEADER's value, or
    why the job must not run (a duplicate delivery, a removed job, a paused queue, a limit)."""
    token = uuid.uuid4().hex
    claimed = scripts.claim(queue, job_id, worker, token)
    if isinstance(claimed, scripts.NotClaimed):
        return claimed
    return claim_header(token, worker, claimed)


class Completions:
    """Successful attempts a worker ran in its consumer's thread (`-P solo`), not yet written.

    The consumer's next take.lua completes them first (one round trip per job instead of
    two); whatever path does not take next (a blocking BRPOP, a cancelled consumer, close)
    completes them on its own. A worker killed meanwhile leaves the job active: its lock
    expires and it runs again, as when a worker dies just before complete.lua.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[scripts.Completion, dict[str, Any]]] = []
        self._consumer: tuple[int, int] | None = None
        self._mutex = threading.Lock()

    def consuming_here(self) -> None:
        """The calling thread delivers jobs that a take can complete."""
        self._consumer = (os.getpid(), threading.get_ident())

    def stop_consuming(self) -> None:
        """Its channel closes: what was deferred is completed now, and nothing more is."""
        self._consumer = None
        self.complete_now()

    def defer(self, done: scripts.Completion, fields: dict[str, Any]) -> bool:
        """Keep `done` for the next take, if this is the consumer's thread."""
        if self._consumer != (os.getpid(), threading.get_ident()):
            return False
        with self._mutex:
            self._pending.append((done, fields))
        return True

    def take_all(self) -> list[tuple[scripts.Completion, dict[str, Any]]]:
        with self._mutex:
            pending, self._pending = self._pending, []
        return pending

    def put_back(self, done: list[tuple[scripts.Completion, dict[str, Any]]]) -> None:
        with self._mutex:
            self._pending[:0] = done

    @staticmethod
    def logged(done: list[tuple[scripts.Completion, dict[str, Any]]], flags: str) -> None:
        for (_done, fields), flag in zip(done, flags, strict=True):
            if flag == str(scripts.COMPLETED):
                log.info("job_complete", **fields)
            elif flag == str(scripts.COMPLETED_CANCELLED):  # failed 'cancelled' instead
                log.warning("job_cancelled", **fields)
            else:
                log.warning("job_lock_lost", **fields)

    def complete_now(self) -> None:
        done = self.take_all()
        for i, (completion, fields) in enumerate(done):
            try:
                written = scripts.complete(completion)
            except Exception:  # Redis away: keep what is left for the next attempt
                self.put_back(done[i:])
                raise
            self.logged([(completion, fields)], str(written))


completions = Completions()
