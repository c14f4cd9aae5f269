"""Sending jobs: the one path every caller (Python, HTTP API, CLI, admin, beat) goes through.

Everything is validated before anything is written: an unknown type, data that fails the
schema, a value that is not JSON or an option out of range raises and writes nothing.
Inside `transaction.atomic()` the job is written and sent only once the transaction commits.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from tasks import scripts
from tasks.connection import get_redis
from tasks.errors import InvalidJobOptions
from tasks.job import Job, get_job
from tasks.options import parse_options
from tasks.registry import dumps, get_job_type

#: Jobs per script call in enqueue_bulk: large enough to amortise the round trip, small
#: enough not to stall Redis (about 5 ms of script time per chunk).
BULK_CHUNK = 500


@dataclass(frozen=True)
class _Prepared:
    job: Job
    new: scripts.NewJob


def _prepare(name: str, data: dict[str, Any] | None, options: dict[str, Any]) -> _Prepared:
    declared = get_job_type(name)
    params = declared.validate(data)
    opts = parse_options(options).merged_over(declared.defaults)
    job_id = opts.job_id or uuid.uuid4().hex
    stored_opts = opts.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"job_id"})
    job = Job(
        queue=declared.queue, id=job_id, name=name, data=params, opts=stored_opts,
        attempts=opts.attempts or 1, priority=opts.priority_step() + 1,
    )  # fmt: skip
    new = scripts.NewJob(job_id, name, dumps(params), dumps(stored_opts), opts.priority_step(),
                         opts.timelimit(), opts.delay, opts.attempts or 1)  # fmt: skip
    return _Prepared(job, new)


def _write(
    queue: str, prepared: Sequence[_Prepared], pipe: Any = None, publish: bool = True
) -> Any:
    return scripts.enqueue(queue, [p.new for p in prepared], publish=publish, client=pipe)


def _settle(prepared: Sequence[_Prepared], created: Sequence[int]) -> list[Job]:
    jobs = []
    for p, was_created in zip(prepared, created, strict=True):
        if was_created:
            job = p.job
            job.state = scripts.CREATED_AS[was_created]
        else:  # the id existed: hand back that job, untouched
            job = get_job(p.job.queue, p.job.id) or p.job
        jobs.append(job)
    return jobs


def _after_commit(send) -> bool:
    """Run `send` now, or on commit when inside an atomic block; True if deferred."""
    if connection.in_atomic_block:
        transaction.on_commit(send)
        return True
    send()
    return False


def enqueue(name: str, data: dict[str, Any] | None = None, **options: Any) -> Job:
    """Create a job of type `name` with `data` and send it (see DESIGN.md for options).

    A second enqueue with a job_id that still exists returns the existing job and creates
    nothing. Inside a transaction, the returned job's state is None until the commit.
    """
    prepared = _prepare(name, data, options)
    result: list[Job] = []

    def send() -> None:
        result.extend(_settle([prepared], _write(prepared.job.queue, [prepared])))

    if _after_commit(send):
        return prepared.job
    return result[0]


def enqueue_bulk(items: Iterable[tuple]) -> list[Job]:
    """Enqueue many jobs: `(name, data)` or `(name, data, options)` each, in one pass.

    Every item is validated before any is written; jobs of one queue go in chunks of
    BULK_CHUNK per script call, all pipelined in one round trip.
    """
    prepared: list[_Prepared] = []
    for index, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) not in (2, 3):
            raise InvalidJobOptions(
                [{"field": f"[{index}]", "message": "expected (name, data[, options])"}]
            )
        name, data, *rest = item
        prepared.append(_prepare(name, data, rest[0] if rest else {}))
    result: list[Job] = []

    def send() -> None:
        by_queue: dict[str, list[int]] = defaultdict(list)
        for position, p in enumerate(prepared):
            by_queue[p.job.queue].append(position)
        pipe = get_redis().pipeline(transaction=False)
        chunks = []
        for queue, positions in by_queue.items():
            for i in range(0, len(positions), BULK_CHUNK):
                chunk = positions[i : i + BULK_CHUNK]
                _write(queue, [prepared[j] for j in chunk], pipe)
                chunks.append(chunk)
        settled: dict[int, Job] = {}
        for chunk, created in zip(chunks, pipe.execute(), strict=True):
            for j, job in zip(chunk, _settle([prepared[j] for j in chunk], created), strict=True):
                settled[j] = job
        result.extend(settled[j] for j in range(len(prepared)))

    if _after_commit(send):
        return [p.job for p in prepared]
    return result


def adopt(name: str, job_id: str, data: dict[str, Any]) -> None:
    """Register a job that arrived the Celery way (`task.delay()`, `send_task`, Flower,
    celery-beat's own scheduler): its message is already in hand, so none is sent."""
    prepared = _prepare(name, data, {"job_id": job_id})
    _write(prepared.job.queue, [prepared], publish=False)


__all__ = ["adopt", "enqueue", "enqueue_bulk"]
