"""The recorder: copies the registry's state changes into the job archive in PostgreSQL.

It reads every queue's event stream as the consumer group RECORDER_GROUP
(`tasks.events.consume_once`) and hands each batch to `tasks.archive.apply`, which upserts
the rows and commits; only then are the entries acknowledged. A recorder that dies
mid-batch leaves its entries pending, and the next batch (of any recorder) claims and
applies them again; applying a batch twice gives the same rows.

Several recorders may run (one per host, say): they take turns batch by batch under a
PostgreSQL advisory lock, because attempt history needs each job's events in stream order,
and two recorders applying interleaved slices of one job's events could not keep it.
Under the lock no other recorder is mid-batch, so whatever is pending is abandoned and
claimed at once (claim_idle_ms=0).

Faults, none of which stops the archive:

- PostgreSQL or Redis away (OperationalError, InterfaceError, a Redis connection error):
  the batch raises, nothing is acknowledged, and the loop (record_jobs) retries it later.
- An event that cannot be archived (PostgreSQL refuses its row, or it is malformed:
  `archive.DATA_ERRORS`): the batch is split in halves until that event is alone, the
  rest is archived, and the event is kept as an ArchiveError row, logged
  (`archive_error`) and acknowledged.
- Events trimmed before they were archived: streams are capped at JOBYARD_EVENTS_MAXLEN
  entries per queue. Before each batch the recorder compares its group's counters with
  the stream's (`find_gaps`): entries added that it neither read nor finds on the stream
  were trimmed unread; pending entries older than the stream's first one (a batch that
  kept failing while the stream rolled over) were trimmed unapplied. For each such gap it
  archives the queue's jobs the registry still holds (`archive.fill_from_registry`),
  estimates the jobs lost with the events (finished in the gap's minutes by the stats,
  known to neither the archive nor the stream), keeps an ArchiveGap row and logs
  `archive_gap`; then it moves its group's read counter past the gap, so that the gap is
  counted once and `recorder_lag()` is right again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Sum

from tasks import archive, keys
from tasks.connection import get_redis
from tasks.events import Event, consume_once, group_lag
from tasks.models import ArchiveError, ArchiveGap, JobRecord

RECORDER_GROUP = "recorder"
#: An arbitrary constant: the advisory lock key recorders take turns on.
LOCK_KEY = 0x4A59_5245  # "JYRE"
#: The scripts keep a queue's per-minute stats this long (tasks/metrics.py: two days).
STATS_MINUTES = 2 * 24 * 60

log = structlog.get_logger("jobyard.recorder")


def _lock(cursor: Any) -> bool:
    cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
    return cursor.fetchone()[0]


def _unlock(cursor: Any) -> None:
    cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


def record_events(batch_size: int = 500, block_ms: int | None = None) -> int:
    """Archive one batch of events (up to batch_size per queue); how many were applied.

    Returns 0 at once when another recorder holds the turn, or when no event came within
    block_ms (None: do not wait).
    """
    with connection.cursor() as cursor:
        if not _lock(cursor):
            return 0
        try:
            for gap in find_gaps():
                _repair(gap)
            # From the stream's first entry: a new recorder archives what is still there.
            return consume_once(
                RECORDER_GROUP, _apply, batch_size=batch_size, block_ms=block_ms,
                claim_idle_ms=0, from_id="0",
            )  # fmt: skip
        finally:
            _unlock(cursor)


def recorder_lag() -> dict[str, int | None]:
    """Per queue, entries the recorder has not read yet (None: unknown, e.g. no group)."""
    return group_lag(RECORDER_GROUP)


def recorder_faults() -> dict[str, dict[str, Any]]:
    """The archive's faults so far, as the dashboard shows them: events set aside
    (ArchiveError rows) and gaps (ArchiveGap rows), counted; two aggregate queries."""
    return {
        "errors": ArchiveError.objects.aggregate(count=Count("id"), last=Max("created_at")),
        "gaps": ArchiveGap.objects.aggregate(
            count=Count("id"),
            events_lost=Sum("events_lost"),
            jobs_recovered=Sum("jobs_recovered"),
            jobs_unrecoverable=Sum("jobs_unrecoverable"),
            last=Max("detected_at"),
        ),
    }


# --- events the archive cannot take --------------------------------------------------------


def _apply(events: list[Event]) -> None:
    bad: list[tuple[Event, str]] = []
    _apply_isolating(events, bad)
    if bad:
        archive.record_errors(bad)
        for event, error in bad:
            log.error(
                "archive_error", queue=event.queue, stream_id=event.id, job_id=event.job_id,
                kind=event.event, error=error,
            )  # fmt: skip


def _apply_isolating(events: list[Event], bad: list[tuple[Event, str]]) -> None:
    """Apply `events`; when that fails for a bad event, apply each half in turn (stream
    order kept) until the bad ones are alone, and list those in `bad`. One bad event in a
    batch of 500 costs about 2 x 9 applies of shrinking halves; anything else raised (an
    outage) ends it with nothing acknowledged."""
    try:
        archive.apply(events)
    except archive.DATA_ERRORS as exc:
        if len(events) == 1:
            bad.append((events[0], f"{type(exc).__name__}: {exc}".strip()))
            return
        middle = len(events) // 2
        _apply_isolating(events[:middle], bad)
        _apply_isolating(events[middle:], bad)


# --- gaps: events trimmed before they were read -----------------------------------------------


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Gap:
    """`lost` entries of `queue` trimmed from its stream before they were archived, between
    `after_id` and `before_id` (the stream's first entry; empty: the stream is empty)."""

    queue: str
    after_id: str
    before_id: str
    lost: int
    #: The group's read counter once past the unread part (None: no unread part), and the
    #: last-delivered id it goes with.
    entries_read: int | None = None
    last_delivered: str = ""
    #: Pending entries among the lost (read, not applied): acknowledged once kept.
    gone: list[str] = field(default_factory=list)


def find_gaps(queues: list[str] | None = None) -> list[Gap]:
    """Per queue, the entries trimmed from the stream before the recorder archived them.

    One MULTI of XINFO STREAM, XINFO GROUPS and XPENDING per queue. Two parts:

    - Unread: the group's `lag` (Redis 7: entries added minus its read counter, which
      counts trimmed entries too) less the entries still on the stream after its
      last-delivered id. That is known when the stream's first entry is past the group's
      last one (all the stream holds is unread) or when the group has read the last entry
      (nothing is); in between the count waits for a later batch. Without those counters
      (Redis 6, or entries deleted with XDEL) it is not counted.
    - Pending: entries read by a batch that failed (PostgreSQL away) and trimmed since,
      older than the stream's first entry (one XPENDING range more). They are acknowledged
      here: XAUTOCLAIM would drop them from the group without a word.
    """
    names = list(queues or settings.JOBYARD_QUEUES)
    client = get_redis()
    pipe = client.pipeline(transaction=True)
    for queue in names:
        pipe.xinfo_stream(keys.events(queue))
        pipe.xinfo_groups(keys.events(queue))
        pipe.xpending(keys.events(queue), RECORDER_GROUP)
    replies = pipe.execute(raise_on_error=False)
    gaps = []
    for i, queue in enumerate(names):
        stream, groups, pending = replies[3 * i : 3 * i + 3]
        if any(isinstance(reply, Exception) for reply in (stream, groups, pending)):
            continue  # no stream or no group yet
        group = next((g for g in groups if _text(g["name"]) == RECORDER_GROUP), None)
        if group is None:
            _create_group(client, queue, stream)
            continue
        last = _text(group["last-delivered-id"])
        first = stream.get("first-entry")
        first_id = _text(first[0]) if first else ""
        gone: list[str] = []
        if pending["pending"] and (not first_id or _id(_text(pending["min"])) < _id(first_id)):
            listed = client.xpending_range(
                keys.events(queue), RECORDER_GROUP, min="-",
                max=f"({first_id}" if first_id else "+", count=pending["pending"],
            )  # fmt: skip
            gone = sorted((_text(p["message_id"]) for p in listed), key=_id)
        unread, entries_read = 0, None
        lag, added = group.get("lag"), stream.get("entries-added")
        if added is not None and last == "0-0" and group.get("entries-read") is None:
            # A group that has read nothing has no read counter, and Redis's lag then
            # assumes nothing was trimmed. It was made at the stream's birth (or with the
            # counter: _create_group), so every entry added since is unread.
            lag = int(added)
        if lag is not None and added is not None:
            if not first_id or _id(first_id) > _id(last):
                on_stream = int(stream["length"])
            elif last == _text(stream["last-generated-id"]):
                on_stream = 0
            else:
                on_stream = None
            if on_stream is not None and int(lag) > on_stream:
                unread = int(lag) - on_stream
                entries_read = int(added) - on_stream
        if unread or gone:
            after = _before(gone[0]) if gone else last
            lost = unread + len(gone)
            gaps.append(
                Gap(queue, after, first_id, lost, entries_read, last_delivered=last, gone=gone)
            )
    return gaps


def _create_group(client: redis.Redis, queue: str, stream: dict[str, Any]) -> None:
    """The recorder's group on a stream it has never read, from the first entry still there
    (as consume_once would make it), with its read counter set to the entries trimmed
    before: history from before the recorder is no gap, and what is trimmed from now on
    is counted. (Redis 6 has no counter: the group is made without one.)"""
    added = stream.get("entries-added")
    read = None if added is None else int(added) - int(stream["length"])
    # BUSYGROUP: another recorder made it meanwhile.
    with contextlib.suppress(redis.ResponseError):
        client.xgroup_create(keys.events(queue), RECORDER_GROUP, id="0", entries_read=read)


def _before(entry_id: str) -> str:
    """The stream id just before `entry_id`."""
    ms, seq = _id(entry_id)
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-18446744073709551615"


def _repair(gap: Gap) -> None:
    """Archive what the registry still holds of the gap's queue, keep and log the gap, then
    acknowledge its pending entries and move the group's read counter past it (last: a
    failure before leaves it to be found again, and the same gap updates its row)."""
    client = get_redis()
    recovered = archive.fill_from_registry(gap.queue)
    unrecoverable = _unrecoverable(client, gap)
    archive.record_gap(gap.queue, gap.after_id, gap.before_id, gap.lost, recovered, unrecoverable)
    log.warning(
        "archive_gap", queue=gap.queue, events_lost=gap.lost, jobs_recovered=recovered,
        jobs_unrecoverable=unrecoverable, after_id=gap.after_id, before_id=gap.before_id,
    )  # fmt: skip
    key = keys.events(gap.queue)
    if gap.gone:
        client.xack(key, RECORDER_GROUP, *gap.gone)
    if gap.entries_read is not None:
        # A stream deleted meanwhile has nothing left to count.
        with contextlib.suppress(redis.ResponseError):
            client.xgroup_setid(
                key, RECORDER_GROUP, gap.last_delivered, entries_read=gap.entries_read
            )


def _unrecoverable(client: redis.Redis, gap: Gap) -> int:
    """About how many jobs went with the gap's events and are gone from the registry too
    (retention trimmed them, or they were removed on completion): the jobs that finished in
    the gap's minutes by the queue's per-minute stats, less those the archive holds (now
    filled from the registry) or the stream still tells of. To the minute, finishing events
    rather than jobs (a job retried and failed twice counts twice), and only for the two
    days the stats are kept."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    first_minute = _id(gap.after_id)[0] // 60_000
    last_minute = (_id(gap.before_id)[0] if gap.before_id else now_ms) // 60_000
    first_minute = max(first_minute, last_minute - STATS_MINUTES)
    pipe = client.pipeline(transaction=False)
    for minute in range(first_minute, last_minute + 1):
        pipe.hmget(keys.stats(gap.queue, minute), "completed", "failed")
    finished = sum(int(v or 0) for values in pipe.execute() for v in values)
    if not finished:
        return 0
    start_ms, end_ms = first_minute * 60_000, (last_minute + 1) * 60_000
    known = {
        _text(raw.get(b"jobId", b""))
        for _, raw in client.xrange(keys.events(gap.queue), min=start_ms, max=end_ms - 1)
        if raw.get(b"event") in (b"completed", b"failed")
    }
    known.update(
        JobRecord.objects.filter(
            queue=gap.queue,
            finished_on__gte=datetime.fromtimestamp(start_ms / 1000, tz=UTC),
            finished_on__lt=datetime.fromtimestamp(end_ms / 1000, tz=UTC),
        ).values_list("job_id", flat=True)
    )
    return max(0, finished - len(known))
