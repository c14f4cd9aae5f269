"""Job events: every state change is also an entry on its queue's Redis stream.

Events: waiting, active, progress, completed, failed, delayed, retrying, stalled (and
removed, paused, resumed). Each names the job and its queue. Streams are capped at
JOBYARD_EVENTS_MAXLEN entries per queue, so a subscriber that falls that far behind
skips ahead; the registry, not the stream, is the record.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings

from tasks import keys
from tasks.connection import get_redis


@dataclass(frozen=True)
class Event:
    queue: str
    id: str  # the stream entry id: increasing, usable as a cursor
    event: str
    job_id: str
    fields: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, str]:
        return {"queue": self.queue, "event": self.event, "jobId": self.job_id, **self.fields}


def last_event_id(queue: str) -> str:
    newest = get_redis().xrevrange(keys.events(queue), count=1)
    return newest[0][0].decode() if newest else "0-0"


def _decode(queue: str, entry_id: bytes, raw: dict[bytes, bytes]) -> Event:
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    return Event(queue, entry_id.decode(), fields.pop("event"), fields.pop("jobId"), fields)


def recent_job_event(
    queue: str, job_id: str, kinds: Iterable[str], scan: int = 1000
) -> Event | None:
    """The newest event of `kinds` about `job_id` among the queue's last `scan` events.

    For a job already gone from the registry (removed on completion): its fate is still on
    the stream for a while. One XREVRANGE of at most `scan` entries.
    """
    wanted = set(kinds)
    for entry_id, raw in get_redis().xrevrange(keys.events(queue), count=scan):
        event = _decode(queue, entry_id, raw)
        if event.job_id == job_id and event.event in wanted:
            return event
    return None


def read_events(
    cursors: dict[str, str], block_ms: int | None = None, count: int = 1000
) -> list[Event]:
    """Events after each queue's cursor, oldest first; waits up to block_ms for one."""
    streams = {keys.events(queue): cursor for queue, cursor in cursors.items()}
    by_key = {keys.events(queue): queue for queue in cursors}
    reply = get_redis().xread(streams, count=count, block=block_ms)
    events = []
    for key, entries in reply or []:
        queue = by_key[key.decode()]
        events += [_decode(queue, entry_id, raw) for entry_id, raw in entries]
    return events


def subscribe(queues: Iterable[str] | None = None, *, from_id: str = "$",
              block_ms: int = 1000) -> Iterator[Event]:  # fmt: skip
    """Events of `queues` (every queue when None) as they happen, in order per queue.

    `from_id="$"` starts at now; a stream id replays from there. The generator blocks in
    Redis, not in a polling loop; stop it by closing it (or leaving the loop).
    """
    names = list(queues or settings.JOBYARD_QUEUES)
    # Fixed now, not at the first next(): events sent in between are not missed.
    cursors = {q: last_event_id(q) if from_id == "$" else from_id for q in names}
    return _follow(cursors, block_ms)


def job_events(queue: str, job_id: str, cursor: str, timeout: float) -> Iterator[Event]:
    """The events of one job after `cursor` (a stream id of `queue`), as they happen, for
    up to `timeout` seconds; the caller stops at the event it waits for. Blocks in Redis
    (XREAD, at most 5 s a call), never in a polling loop."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        for event in read_events({queue: cursor}, max(1, int(min(remaining, 5) * 1000))):
            cursor = event.id
            if event.job_id == job_id:
                yield event


def _follow(cursors: dict[str, str], block_ms: int) -> Iterator[Event]:
    while True:
        for event in read_events(cursors, block_ms=block_ms):
            cursors[event.queue] = event.id
            yield event
