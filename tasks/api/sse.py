"""GET /api/v1/events: job events as server-sent events, live.

Each event is one entry of a queue's event stream (tasks.events), sent as

    id: default=1700000000000-0,email=1699999999999-3
    event: progress
    data: {"queue": "default", "event": "progress", "jobId": "...", "progress": 50, ...}

The id holds the position reached in every subscribed queue, so a client that reconnects
with `Last-Event-ID` (browsers' EventSource do it by themselves) misses nothing and sees
nothing twice, as long as the queue's capped stream still holds what it missed.

What a stream costs: under WSGI it holds one web thread while it is open. It blocks in
Redis (XREAD), not in a polling loop; it writes a `: keepalive` comment every
SSE_KEEPALIVE_SECONDS, so a client that left is found at the next write; and it ends after
SSE_MAX_SECONDS with an `end` event, so an idle client cannot hold a thread forever: the
client reconnects with Last-Event-ID and carries on. Run gunicorn with threads (the
Procfile's WEB_THREADS) or gevent; see docs/api.md. How many may be open at once, per
process and per caller, is tasks.api.streams's to say.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import structlog
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, StreamingHttpResponse
from pydantic import BaseModel

from tasks import Event, Queue
from tasks.api.base import READ, api_view
from tasks.api.errors import ApiError, error_for
from tasks.api.schemas import QUEUE_NAME, STREAM_ID, ErrorDetail, JobEvent, StreamEnd, dump
from tasks.api.streams import Held, Lease
from tasks.events import last_event_id, read_events

log = structlog.get_logger("jobyard.api")

#: The longest Redis may block per read: below the client's 10 s socket timeout.
BLOCK_MS = 5000
#: What a client waits before reconnecting after the stream ends or breaks.
RETRY_MS = 1000
_CURSOR = re.compile(rf"^(?P<queue>{QUEUE_NAME})=(?P<id>{STREAM_ID})$")
#: A stream id is two unsigned 64-bit integers, its first part Redis's clock in ms: Redis
#: refuses a larger one (an error mid-stream), and one whose time is more than a day ahead
#: was never sent (the stream would stay silent until then).
_U64_DIGITS, _U64 = 20, 2**64 - 1
_FUTURE_MS = 24 * 3600 * 1000
_JSON_FIELDS = ("progress", "returnvalue")
_INT_FIELDS = ("delayUntil", "delay", "attemptsMade", "stalledCount")


def subscribed_queues(request: HttpRequest) -> list[str]:
    """`?queue=a,b` or `?queue=a&queue=b`; every queue when absent. 404 for an unknown one."""
    names = [n.strip() for v in request.GET.getlist("queue") for n in v.split(",") if n.strip()]
    for name in names:
        Queue(name)
    return list(dict.fromkeys(names)) or list(settings.JOBYARD_QUEUES)


def parse_cursor(value: str, queues: list[str]) -> dict[str, str]:
    """Last-Event-ID back into each queue's position; queues it does not name start now."""
    cursors: dict[str, str] = {}
    for part in value.split(","):
        match = _CURSOR.match(part.strip())
        position = _stream_id(match["id"]) if match else None
        if position is None:
            raise ApiError(
                400,
                "invalid_last_event_id",
                "Last-Event-ID must be queue=streamId pairs separated by commas, as sent",
            )
        cursors[match["queue"]] = position
    return {q: cursors.get(q) or last_event_id(q) for q in queues}


def _stream_id(raw: str) -> str | None:
    """`ms-seq` as Redis reads it, or None when no stream of ours can have sent it."""
    parts = raw.split("-")
    if any(len(p) > _U64_DIGITS for p in parts):  # and int() of 5,000 digits is an error
        return None
    ms, seq = (int(p) for p in parts)
    if ms > _U64 or seq > _U64 or ms > time.time() * 1000 + _FUTURE_MS:
        return None
    return f"{ms}-{seq}"


def format_cursor(cursors: dict[str, str]) -> str:
    return ",".join(f"{queue}={position}" for queue, position in cursors.items())


def event_data(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {"queue": event.queue, "event": event.event,
                            "jobId": event.job_id or None,
                            "timestamp": int(event.id.split("-")[0])}  # fmt: skip
    for name, value in event.fields.items():
        if name in _JSON_FIELDS:
            try:
                data[name] = json.loads(value)
            except ValueError:
                data[name] = value
        elif name in _INT_FIELDS and value.lstrip("-").isdigit():
            data[name] = int(value)
        else:
            data[name] = value
    return data


def _message(event: str, model: type[BaseModel], data: dict[str, Any],
             event_id: str | None = None) -> str:  # fmt: skip
    """One event, its data checked and written by `model` (compact JSON, one line)."""
    lines = [f"id: {event_id}"] if event_id else []
    lines += [f"event: {event}", f"data: {dump(model, data)}"]
    return "\n".join(lines) + "\n\n"


def stream(cursors: dict[str, str], max_seconds: float, keepalive: float,
           lease: Lease | None = None) -> Iterator[str]:  # fmt: skip
    """The event stream's text, chunk by chunk, until max_seconds or the client leaves.

    A client that leaves is noticed when a write fails: the server then closes this
    generator (GeneratorExit at the current yield), which ends it. `lease`, the stream's
    place among its caller's streams, is renewed as it goes.
    """
    started = last_write = time.monotonic()
    yield f"retry: {RETRY_MS}\n: connected\n\n"
    try:
        while (remaining := started + max_seconds - time.monotonic()) > 0:
            if lease is not None:
                lease.renew()
            until_keepalive = keepalive - (time.monotonic() - last_write)
            block_s = max(0.001, min(remaining, until_keepalive, BLOCK_MS / 1000))
            # Across queues, send in stream-id order: one Redis clock numbers them all.
            events = sorted(read_events(cursors, block_ms=int(block_s * 1000) or 1),
                            key=lambda e: tuple(map(int, e.id.split("-"))))  # fmt: skip
            for event in events:
                cursors[event.queue] = event.id
                yield _message(event.event, JobEvent, event_data(event), format_cursor(cursors))
                last_write = time.monotonic()
            if time.monotonic() - last_write >= keepalive:
                yield ": keepalive\n\n"
                last_write = time.monotonic()
    except Exception as exc:  # Redis went away mid-stream: say so, the client reconnects
        api_error = error_for(exc)
        if api_error is None:
            log.exception("sse_failed")
            api_error = ApiError(500, "internal_error", "internal error; see the logs")
        yield _message("error", ErrorDetail, {"code": api_error.code, "message": api_error.message})
        return
    yield _message("end", StreamEnd, {"reason": "max_lifetime", "reconnect": True,
                                      "maxSeconds": max_seconds}, format_cursor(cursors))  # fmt: skip


@api_view({"GET": READ})
def events(request: HttpRequest) -> StreamingHttpResponse:
    queues = subscribed_queues(request)
    resume = request.headers.get("Last-Event-ID") or request.GET.get("lastEventId")
    # Fixed now, before the response starts: events sent meanwhile are not missed.
    cursors = parse_cursor(resume, queues) if resume else {q: last_event_id(q) for q in queues}
    conf = settings.JOBYARD_API
    principal = request.api_principal
    caller = f"token:{principal.token.pk}" if principal.token else f"user:{principal.user.pk}"
    lease = Lease(caller)  # 503 when this process's streams are full, 429 the caller's
    try:
        if not connection.in_atomic_block:
            # A stream may stay open for minutes: it needs Redis, not a database connection.
            connection.close()
        chunks = stream(cursors, conf["SSE_MAX_SECONDS"], conf["SSE_KEEPALIVE_SECONDS"], lease)
        response = StreamingHttpResponse(Held(chunks, lease), content_type="text/event-stream")
    except BaseException:
        lease.release()
        raise
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
