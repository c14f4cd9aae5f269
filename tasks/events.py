"""Job events: every state change is also an entry on its queue's Redis stream.

Events: waiting, active, progress, completed, failed, delayed, retrying, stalled (and
removed, paused, resumed). Each names the job and its queue. Streams are capped at
JOBYARD_EVENTS_MAXLEN entries per queue, so a subscriber that falls that far behind
skips ahead; the registry, not the stream, is the record.

Two ways to read them: `subscribe` follows the streams from now (a live view: nothing is
remembered between runs), and `consume` reads them through a Redis consumer group (a
durable reader: each event is handed to one consumer of the group, acknowledged once its
handler returns, and handed again when the handler raised or its consumer died).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import redis
from django.conf import settings

from tasks import keys
from tasks.connection import get_redis, process_name


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
    event, job_id = fields.pop("event", ""), fields.pop("jobId", "")
    return Event(queue, entry_id.decode(), event, job_id, fields)


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


# --- consumer groups: durable readers ----------------------------------------------------

#: Handed each batch of events; returning acknowledges them, raising leaves them pending.
Handler = Callable[[list[Event]], None]
#: An entry its consumer has held this long without acknowledging is presumed abandoned.
CLAIM_IDLE_MS = 60_000


def consume(group: str, handler: Handler, *, queues: Iterable[str] | None = None,
            consumer: str | None = None, batch_size: int = 500, block_ms: int = 1000,
            claim_idle_ms: int = CLAIM_IDLE_MS, from_id: str = "$",
            stop: Callable[[], bool] | None = None) -> int:  # fmt: skip
    """Hand the events of `queues` (every queue when None) to `handler`, batch by batch,
    as consumer `consumer` of the group `group`, until `stop()` is true; how many it handled.

    Each call of `consume_once` is one turn (see there). The loop waits in Redis (XREADGROUP
    BLOCK block_ms), not in a sleep, and checks `stop` between batches, so a
    `threading.Event().is_set` or a signal flag ends it within block_ms. An exception (from
    the handler, Redis, ...) ends the loop and reaches the caller with the batch unacknowledged;
    restarting the loop hands that batch again first.
    """
    names = list(queues or settings.JOBYARD_QUEUES)
    total = 0
    while not (stop and stop()):
        total += consume_once(
            group, handler, queues=names, consumer=consumer, batch_size=batch_size,
            block_ms=block_ms, claim_idle_ms=claim_idle_ms, from_id=from_id,
        )  # fmt: skip
    return total


def consume_once(group: str, handler: Handler, *, queues: Iterable[str] | None = None,
                 consumer: str | None = None, batch_size: int = 500, block_ms: int | None = None,
                 claim_idle_ms: int = CLAIM_IDLE_MS, from_id: str = "$") -> int:  # fmt: skip
    """One batch for `handler` (up to batch_size entries per queue); how many events it got.

    - The group is created on first use, reading from `from_id`: "$" (the default) for
      events from now on, "0" for everything the stream still holds.
    - Redelivery first: the entries this consumer received and did not acknowledge (its
      handler raised), after claiming those another consumer has held unacknowledged for
      `claim_idle_ms` (it died mid-batch). Only when there are none, new entries, waiting up
      to block_ms for one (None: not at all).
    - The handler gets them as Events, oldest first per queue; they are acknowledged
      (XACK) only once it returns. When it raises, the exception reaches the caller and the
      batch stays pending, to be handed again: handlers must be safe to run twice.

    `consumer` names this reader within the group (default: host:pid); two processes
    must not share a name. Returns 0 when nothing came within block_ms.
    """
    names = list(queues or settings.JOBYARD_QUEUES)
    client = get_redis()
    me = consumer or process_name()
    streams = _stream_keys(names)
    _ensure_groups(client, group, streams, from_id)
    try:
        events, gone = _read_group(client, group, me, streams, batch_size, block_ms, claim_idle_ms)
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        # The stream was deleted (FLUSHDB, a key cleanup): make the group again.
        _groups_ready.difference_update({(id(client), key, group) for key in streams})
        _ensure_groups(client, group, streams, from_id)
        events, gone = _read_group(client, group, me, streams, batch_size, block_ms, claim_idle_ms)
    if events:
        handler(events)
    acks: dict[str, list[str]] = {}
    for queue, entry_id in gone + [(e.queue, e.id) for e in events]:
        acks.setdefault(queue, []).append(entry_id)
    if acks:
        pipe = client.pipeline(transaction=False)
        for key, queue in streams.items():
            if queue in acks:
                pipe.xack(key, group, *acks[queue])
        pipe.execute()
    return len(events)


def group_lag(group: str, queues: Iterable[str] | None = None) -> dict[str, int | None]:
    """Per queue, the entries `group` has not read yet (None: unknown, e.g. no group yet)."""
    client = get_redis()
    lag: dict[str, int | None] = {}
    for key, queue in _stream_keys(list(queues or settings.JOBYARD_QUEUES)).items():
        try:
            groups = client.xinfo_groups(key)
        except redis.ResponseError:  # no stream yet
            groups = []
        found = [g for g in groups if g["name"].decode() == group]
        lag[queue] = found[0].get("lag") if found else None
    return lag


def _stream_keys(queues: list[str]) -> dict[str, str]:
    """Each queue's stream key -> the queue."""
    return {keys.events(queue): queue for queue in queues}


_groups_ready: set[tuple[int, str, str]] = set()


def _ensure_groups(client: redis.Redis, group: str, streams: dict[str, str], from_id: str) -> None:
    for key in streams:
        if (id(client), key, group) in _groups_ready:
            continue
        try:
            client.xgroup_create(key, group, id=from_id, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        _groups_ready.add((id(client), key, group))


def _read_group(client: redis.Redis, group: str, me: str, streams: dict[str, str],
                batch_size: int, block_ms: int | None,
                claim_idle_ms: int) -> tuple[list[Event], list[tuple[str, str]]]:  # fmt: skip
    """(events to handle, (queue, id) of pending entries the stream no longer holds)."""
    # Abandoned entries become this consumer's (XAUTOCLAIM, one pipelined round per
    # batch_size pending entries scanned); XREADGROUP from 0 then reads them back with the
    # ones this consumer already held, in stream order.
    cursors, claimed = dict.fromkeys(streams, "0-0"), dict.fromkeys(streams, 0)
    while cursors:
        pipe = client.pipeline(transaction=False)
        for key, cursor in cursors.items():
            pipe.xautoclaim(key, group, me, claim_idle_ms, start_id=cursor, count=batch_size)
        for key, (cursor, entries, *_) in zip(list(cursors), pipe.execute(), strict=True):
            claimed[key] += len(entries)
            if cursor in (b"0-0", "0-0") or claimed[key] >= batch_size:
                del cursors[key]
            else:
                cursors[key] = cursor
    held = client.xreadgroup(group, me, dict.fromkeys(streams, "0"), count=batch_size)
    events, gone = _decode_group_reply(streams, held)
    if events:
        return events, gone
    reply = client.xreadgroup(group, me, dict.fromkeys(streams, ">"), count=batch_size,
                              block=block_ms)  # fmt: skip
    events, _ = _decode_group_reply(streams, reply)
    return events, gone


def _decode_group_reply(
    streams: dict[str, str], reply: list | None
) -> tuple[list[Event], list[tuple[str, str]]]:
    events, gone = [], []
    for key, entries in reply or []:
        queue = streams[key.decode() if isinstance(key, bytes) else key]
        for entry_id, raw in entries:
            if not raw:  # pending, but trimmed from the stream meanwhile
                gone.append((queue, entry_id.decode()))
                continue
            events.append(_decode(queue, entry_id, raw))
    return events, gone
