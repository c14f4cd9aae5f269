"""What a job's entry in a broker list is, and the Celery message it stands for.

A waiting job's entry in its queue's kombu list is a lean token, `queue/id` (publish() in
tasks/lua/prelude.lua), not a Celery message: the job's hash already holds everything the
message would repeat (its type, id, queue, priority, time limit), so the consumer builds the
message from the hash as it claims the job (take.lua answers the fields; the transport calls
`build`). A job sent the Celery way keeps its own message in its hash (`msg`: canvas,
links, extra headers), which is delivered with a fresh delivery tag. This keeps a waiting
job at about a quarter of what a full message beside the hash cost (docs/architecture.md,
"Lean messages").

Full messages still arrive (written by a release before lean messages, with
JOBYARD_LEAN_MESSAGES off, or by another producer): take.lua reads both forms. A token never
starts with `{`, which every kombu message does.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from kombu.utils.json import loads

from tasks import keys

#: What separates a token's queue from its job id (neither may contain it).
TOKEN_SEP = "/"
#: The `origin` header of the messages built for registry jobs: a consumer that receives one
#: another way (tasks.worker.claims.job_address) finds the job by its id and routing key.
ORIGIN = "jobyard"
#: The body of a registry job's message: its arguments live in the registry, not in it.
BODY = '[[], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'
NO_TIMELIMIT = (None, None)


def token(queue: str, job_id: str) -> str:
    """A job's entry in its queue's broker list."""
    return f"{queue}{TOKEN_SEP}{job_id}"


def parse_token(raw: bytes | str) -> tuple[str, str] | None:
    """(queue, job id) of a lean token, or None for a full message (or garbage)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if not text or text[0] == "{":
        return None
    queue, sep, job_id = text.partition(TOKEN_SEP)
    return (queue, job_id) if sep and queue and job_id else None


def build(
    queue: str, job_id: str, name: str, step: int, timelimit: Any, tag: str
) -> dict[str, Any]:
    """The protocol-2 message of a registry job, as kombu delivers it: what a full message in
    the list used to hold (the fields Celery reads; the rest are Celery's defaults)."""
    return {
        "body": BODY,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": name, "id": job_id, "shadow": None, "eta": None,
            "expires": None, "group": None, "group_index": None, "retries": 0,
            "timelimit": list(timelimit or NO_TIMELIMIT), "root_id": job_id,
            "parent_id": None, "argsrepr": "()", "kwargsrepr": "{}", "origin": ORIGIN,
            "ignore_result": True, "replaced_task_nesting": 0, "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": job_id, "reply_to": "", "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": step,
            "body_encoding": "utf-8", "delivery_tag": tag,
        },
    }  # fmt: skip


def kept(stored: bytes | str, tag: str) -> dict[str, Any]:
    """The message a job sent the Celery way keeps, under a fresh delivery tag (a worker may
    still hold an earlier copy's)."""
    message = loads(stored.decode() if isinstance(stored, bytes) else stored)
    message["properties"]["delivery_tag"] = tag
    return message


def for_job(
    queue: str, job_id: str, name: str, step: int, timelimit: bytes | str | None,
    stored: bytes | str | None, tag: str,
) -> dict[str, Any]:  # fmt: skip
    """The message for a job's token, from its hash's fields (`tl`, `msg`: empty if none)."""
    if stored:
        return kept(stored, tag)
    return build(queue, job_id, name, step, json.loads(timelimit) if timelimit else None, tag)


def read(raw: bytes | str, client: Any) -> dict[str, Any] | None:
    """Any list entry as kombu would deliver it: a token resolved through its job's hash
    (one round trip; None when the job is gone), a full message decoded. For a consumer
    that pops without take.lua (tasks.worker.transport's stock path) and for tools."""
    address = parse_token(raw)
    if address is None:
        return loads(raw.decode() if isinstance(raw, bytes) else raw)
    queue, job_id = address
    name, priority, timelimit, stored = client.hmget(
        keys.job(queue, job_id), "name", "priority", "tl", "msg"
    )
    if name is None:
        return None
    tag = f"{job_id}#{uuid.uuid4().hex}"  # a delivery of its own
    return for_job(queue, job_id, name.decode(), int(priority or 0), timelimit, stored, tag)
