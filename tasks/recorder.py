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

Limits: streams are capped at JOBYARD_EVENTS_MAXLEN entries per queue; a recorder that
falls that far behind loses the entries trimmed before it read them (`recorder_lag()`
tells how far behind it is).
"""

from __future__ import annotations

from typing import Any

import structlog
from django.db import connection

from tasks import archive
from tasks.events import Event, consume_once, group_lag

RECORDER_GROUP = "recorder"
#: An arbitrary constant: the advisory lock key recorders take turns on.
LOCK_KEY = 0x4A59_5245  # "JYRE"

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
