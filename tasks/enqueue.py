"""Sending jobs: the one path every caller (Python, HTTP API, CLI, admin, beat) goes through.

Everything is validated before anything is written: an unknown type, data that fails the
schema, a value that is not JSON or an option out of range raises and writes nothing.
Inside `transaction.atomic()` the job is written and sent only once the transaction commits.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import structlog
from celery import current_app
from celery.utils.time import maybe_make_aware
from django.db import connection, transaction
from kombu.utils import json as kombu_json

from tasks import keys, scripts, tracing
from tasks.connection import get_redis
from tasks.errors import InvalidJobData, InvalidJobOptions
from tasks.job import Job, get_job
from tasks.options import ID_PATTERN, parse_options, shown, stored
from tasks.registry import dumps, find_job_type, get_job_type

log = structlog.get_logger("jobyard.enqueue")

#: Jobs per script call in enqueue_bulk: large enough to amortise the round trip, small
#: enough not to stall Redis (about 5 ms of script time per chunk).
BULK_CHUNK = 500


@dataclass(frozen=True)
class _Prepared:
    job: Job
    new: scripts.NewJob
    #: '' or the JSON of the job's group, dedupe and debounce, for enqueue.lua.
    features: str = ""


def _features(opts: Any) -> str:
    """enqueue.lua's per-job features (see tasks/lua/prelude_dedupe.lua): short names, and
    nothing at all for a job that uses none (the script then decodes nothing)."""
    found: dict[str, Any] = {}
    if opts.group:
        found["g"] = opts.group
    if opts.dedupe:
        found.update(dk=opts.dedupe.key, dt=opts.dedupe.ttl)
    if opts.debounce:
        found.update(bk=opts.debounce.key, bd=opts.debounce.delay)
    return json.dumps(found, separators=(",", ":")) if found else ""


def _prepare(name: str, data: dict[str, Any] | None, options: dict[str, Any]) -> _Prepared:
    declared = get_job_type(name)
    params = declared.validate(data)
    opts = parse_options(options).merged_over(declared.defaults)
    job_id = opts.job_id or uuid.uuid4().hex
    job = Job(
        queue=declared.queue, id=job_id, name=name, data=params, opts=shown(opts),
        attempts=opts.attempts or 1, priority=opts.priority_step() + 1,
    )  # fmt: skip
    delay = opts.debounce.delay if opts.debounce else opts.delay
    new = scripts.NewJob(job_id, name, dumps(params), dumps(stored(opts)), opts.priority_step(),
                         opts.timelimit(), delay, opts.attempts or 1,
                         int(bool(opts.lifo)))  # fmt: skip
    return _Prepared(job, new, _features(opts))


def _write(
    queue: str, prepared: Sequence[_Prepared], pipe: Any = None, publish: bool = True
) -> Any:
    features = [p.features for p in prepared]
    return scripts.enqueue(queue, [p.new for p in prepared], publish=publish, client=pipe,
                           features=features if any(features) else None)  # fmt: skip


def _settle(prepared: Sequence[_Prepared], created: Sequence[Any]) -> list[Job]:
    jobs = []
    for p, was_created in zip(prepared, created, strict=True):
        if isinstance(was_created, list):  # a dedupe or debounce key's job is the answer
            other = was_created[1].decode()
            job = get_job(p.job.queue, other) or Job(queue=p.job.queue, id=other)
        elif was_created:
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
        queue = prepared.job.queue
        with tracing.enqueue_span(name, queue) as carrier:
            if carrier is None:
                result.extend(_settle([prepared], _write(queue, [prepared])))
                return
            # The trace context goes with the job, in the same MULTI: a worker that
            # claims it finds it (tasks/tracing.py). One more command, with tracing on.
            pipe = get_redis().pipeline(transaction=True)
            _write(queue, [prepared], pipe)
            pipe.hsetnx(keys.job(queue, prepared.job.id), "trace", carrier)
            result.extend(_settle([prepared], pipe.execute()[0]))

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


class CeleryMessage(NamedTuple):
    """A message sent the Celery way, made a registry job by the transport (send.lua)."""

    job: scripts.NewJob
    #: The message as it goes to the broker (and is kept with the job), JSON.
    message: str


def prepare_message(
    queue: str, message: dict[str, Any], priority_step: int
) -> CeleryMessage | None:
    """The job a Celery task message makes, or None for a message the registry cannot track
    (not a task message, or a task id the registry's ids cannot be: it is sent untracked).

    A job type's parameters are validated here, whoever sent them (delay(), send_task,
    Flower): InvalidJobData raises at the sender and nothing is sent. An ETA or countdown
    becomes the job's durable delay; the message itself then carries none, so the worker
    that receives it when due runs it at once instead of holding it in memory.
    """
    headers = message.get("headers")
    if not isinstance(headers, dict):
        return None
    task_id, name = headers.get("id"), headers.get("task")
    if not isinstance(task_id, str) or not isinstance(name, str):
        return None
    if not _ID.match(task_id):
        log.warning("task_untracked", task_id=task_id[:200], task=name,
                    reason="the task id is not a valid job id")  # fmt: skip
        return None
    args, kwargs = _arguments(message)
    declared = find_job_type(name)
    if declared is not None:
        if args:
            raise InvalidJobData(name, [{"field": "(args)", "message": "pass parameters by name"}])
        data = declared.validate(kwargs if isinstance(kwargs, dict) else None)
        opts = declared.defaults
        attempts = opts.attempts or 1
        timelimit = opts.timelimit()
        headers["timelimit"] = json.loads(timelimit)
        stored_opts = stored(opts)
    else:
        data = {"args": args, "kwargs": kwargs}
        task = current_app.tasks.get(name)
        retries = getattr(task, "max_retries", None)
        # Celery decides a plain task's retries; the budget only bounds crash loops (0: none).
        attempts = retries + 1 if isinstance(retries, int) else 0
        timelimit = dumps(headers.get("timelimit") or [None, None])
        stored_opts = {}
    delay_ms = _delay_ms(headers.get("eta"))
    if delay_ms > 0:
        headers["eta"] = None
    headers["jobyard_job"] = f"{queue}/{task_id}"
    # publish() in prelude.lua finds the delivery tag at the very end of the message.
    properties = message.pop("properties")
    properties["delivery_tag"] = properties.pop("delivery_tag")
    message["properties"] = properties
    try:
        encoded_data = dumps(data)
    except (TypeError, ValueError):
        encoded_data = dumps({"unreadable": "arguments the registry cannot show as JSON"})
    new = scripts.NewJob(task_id, name, encoded_data, dumps(stored_opts), priority_step,
                         timelimit, delay_ms, attempts)  # fmt: skip
    return CeleryMessage(new, kombu_json.dumps(message))


_ID = re.compile(ID_PATTERN)


def _arguments(message: dict[str, Any]) -> tuple[Any, Any]:
    """A protocol-2 message's (args, kwargs), or (None, None) when they cannot be read."""
    body = message.get("body")
    try:
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        if message.get("content-type") != "application/json":
            return None, None
        decoded = json.loads(body)
        return decoded[0], decoded[1]
    except (TypeError, ValueError, IndexError, KeyError, binascii.Error):
        return None, None


def _delay_ms(eta: Any) -> int:
    if not eta:
        return 0
    try:
        due = maybe_make_aware(datetime.fromisoformat(eta) if isinstance(eta, str) else eta)
    except (TypeError, ValueError):
        return 0
    return max(0, int((due - datetime.now(UTC)).total_seconds() * 1000))


def adopt(name: str, job_id: str, data: dict[str, Any]) -> None:
    """Register a job that arrived the Celery way (`task.delay()`, `send_task`, Flower,
    celery-beat's own scheduler): its message is already in hand, so none is sent."""
    prepared = _prepare(name, data, {"job_id": job_id})
    _write(prepared.job.queue, [prepared], publish=False)


__all__ = ["adopt", "enqueue", "enqueue_bulk", "prepare_message"]
