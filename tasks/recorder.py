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

Limits: streams are capped at JOBYARD_EVENTS_MAXLEN entries per queue; a recorder that
falls that far behind loses the entries trimmed before it read them (`recorder_lag()`
tells how far behind it is).
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from tasks import archive
from tasks.events import consume_once, group_lag

RECORDER_GROUP = "recorder"
#: An arbitrary constant: the advisory lock key recorders take turns on.
LOCK_KEY = 0x4A59_5245  # "JYRE"


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
                RECORDER_GROUP, archive.apply, batch_size=batch_size, block_ms=block_ms,
                claim_idle_ms=0, from_id="0",
            )  # fmt: skip
        finally:
            _unlock(cursor)


def recorder_lag() -> dict[str, int | None]:
    """Per queue, entries the recorder has not read yet (None: unknown, e.g. no group)."""
    return group_lag(RECORDER_GROUP)
