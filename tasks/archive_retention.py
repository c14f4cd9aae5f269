"""The archive's bound: finished jobs' rows pruned by age, per queue and final state.

Redis forgets finished jobs by count (retention); the archive in PostgreSQL kept every one
for ever. Here each final state has an age limit per queue (settings: JOBYARD_QUEUES'
`archive_days`, from JOBYARD_ARCHIVE_<STATE>_DAYS and QUEUE_<NAME>_ARCHIVE_<STATE>_DAYS;
0 keeps them for ever), and `prune_archive` deletes what is older, with its attempts.

Built to run beside the recorder and the admin on a table of millions of rows:

- one batch is one statement in its own short transaction: it picks at most
  ARCHIVE_PRUNE_BATCH rows through the index (queue, state, finished_on) (cancelled rows:
  a partial index on removed_at), locks them `FOR UPDATE SKIP LOCKED` (a row the recorder
  is writing is left for the next run, and one whose state changed meanwhile is re-checked,
  not deleted), and deletes those rows' attempts and the rows together;
- each batch starts where the last one ended (its newest age), so no batch walks the index
  entries of rows its predecessors deleted;
- JobAttempt's foreign key is not an ON DELETE CASCADE in the database (Django emulates
  cascades with a SELECT and a DELETE per batch of objects): the batch deletes the attempts
  itself, through the index on attempts' job id, in the same statement.

Rows that are not final (waiting, delayed, active) are never pruned, however old: they are
jobs still in flight, or rows whose last event was lost, which an operator should see.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from tasks.models import JobAttempt, JobRecord

#: The archive's final states, each pruned by its own age limit.
PRUNABLE = ("completed", "failed", "cancelled")

#: The column a row's age is read from: a cancelled job never finished, it was removed.
AGE_COLUMN = {"completed": "finished_on", "failed": "finished_on", "cancelled": "removed_at"}


def retention_days(queue: str, state: str) -> int:
    """Days the archive keeps `queue`'s rows of final state `state` (0: for ever)."""
    return settings.JOBYARD_QUEUES[queue]["archive_days"][state]


@dataclass(frozen=True)
class Batch:
    """One statement of a prune: which rows, how many, how long it took."""

    queue: str
    state: str
    rows: int
    attempts: int
    seconds: float


@dataclass
class PruneSummary:
    #: "queue.state" -> rows deleted, for every pair pruned (0 included).
    deleted: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    batches: int = 0
    #: The most rows one batch deleted (at most the batch size).
    largest_batch: int = 0
    #: The longest batch, in seconds.
    slowest_batch_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "deleted": self.deleted, "total": self.total, "attempts": self.attempts,
            "batches": self.batches, "largestBatch": self.largest_batch,
            "slowestBatchS": round(self.slowest_batch_s, 3),
        }  # fmt: skip


def _batch_sql(age_column: str) -> str:
    table, attempts = JobRecord._meta.db_table, JobAttempt._meta.db_table
    # `age_column` comes from AGE_COLUMN, never from a caller.
    return f"""
        WITH doomed AS (
            SELECT id, {age_column} AS age FROM {table}
            WHERE queue = %(queue)s AND state = %(state)s
              AND {age_column} < %(cutoff)s AND {age_column} >= %(after)s
            ORDER BY {age_column}
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        ), gone_attempts AS (
            DELETE FROM {attempts} WHERE job_id IN (SELECT id FROM doomed) RETURNING 1
        ), gone AS (
            DELETE FROM {table} WHERE id IN (SELECT id FROM doomed) RETURNING 1
        )
        SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM gone_attempts),
               (SELECT max(age) FROM doomed)
    """  # noqa: S608 - table and column names are the models', not input


#: The earliest age a batch looks at first: every timestamp is after it.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def prune_rows(queue: str, state: str, cutoff: datetime, batch_size: int,
               on_batch: Callable[[Batch], None] | None = None) -> tuple[int, int, list[Batch]]:  # fmt: skip
    """Delete `queue`'s rows of `state` older than `cutoff`, `batch_size` a statement;
    (rows, attempts, batches) deleted."""
    sql = _batch_sql(AGE_COLUMN[state])
    rows = attempts = 0
    batches: list[Batch] = []
    after = _EPOCH
    while True:
        started = time.monotonic()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, {"queue": queue, "state": state, "cutoff": cutoff,
                                 "after": after, "limit": batch_size})  # fmt: skip
            gone, gone_attempts, newest = cursor.fetchone()
        if not gone:
            return rows, attempts, batches
        batch = Batch(queue, state, gone, gone_attempts, time.monotonic() - started)
        batches.append(batch)
        if on_batch is not None:
            on_batch(batch)
        rows, attempts, after = rows + gone, attempts + gone_attempts, newest
        if gone < batch_size:  # the rest, if any, are locked by a writer: the next run's
            return rows, attempts, batches


def prune_archive(*, queues: Iterable[str] | None = None, states: Iterable[str] | None = None,
                  older_than: timedelta | None = None, batch_size: int | None = None,
                  now: datetime | None = None,
                  on_batch: Callable[[Batch], None] | None = None) -> PruneSummary:  # fmt: skip
    """Delete archive rows (and their attempts) older than their retention, in batches.

    `queues` and `states` narrow it (default: every queue, every final state);
    `older_than` replaces the configured ages for this run; `on_batch` is called after each
    batch (a progress report, a benchmark's timer).
    """
    queues = list(queues) if queues is not None else list(settings.JOBYARD_QUEUES)
    states = list(states) if states is not None else list(PRUNABLE)
    unknown = [s for s in states if s not in PRUNABLE]
    if unknown:
        raise ValueError(f"state: {', '.join(unknown)} is not a final state "
                         f"({', '.join(PRUNABLE)})")  # fmt: skip
    unknown = [q for q in queues if q not in settings.JOBYARD_QUEUES]
    if unknown:
        raise ValueError(f"queue: unknown queue {', '.join(unknown)}")
    if older_than is not None and older_than < timedelta(0):
        raise ValueError("older_than: must not be negative")
    size = batch_size or settings.JOBYARD["ARCHIVE_PRUNE_BATCH"]
    now = now or timezone.now()
    summary = PruneSummary()
    for queue in queues:
        for state in states:
            if older_than is not None:
                age = older_than
            elif days := retention_days(queue, state):
                age = timedelta(days=days)
            else:
                continue  # kept for ever
            rows, attempts, batches = prune_rows(queue, state, now - age, size, on_batch)
            summary.deleted[f"{queue}.{state}"] = rows
            summary.attempts += attempts
            summary.batches += len(batches)
            summary.largest_batch = max([summary.largest_batch, *(b.rows for b in batches)])
            summary.slowest_batch_s = max([summary.slowest_batch_s, *(b.seconds for b in batches)])
    return summary


#: Up to this many rows a table is counted exactly; past it, PostgreSQL's estimate.
EXACT_COUNT_LIMIT = 10_000


def archive_size() -> dict[str, Any]:
    """The archive's size for the dashboard: rows (exact up to EXACT_COUNT_LIMIT, else the
    planner's estimate), bytes on disk with indexes and TOAST (pg_total_relation_size), for
    jobs and attempts, and the oldest job's creation time. A few index-only reads: no
    COUNT(*) of a large table."""
    tables = {}
    with connection.cursor() as cursor:
        for key, model in (("jobs", JobRecord), ("attempts", JobAttempt)):
            table = model._meta.db_table
            cursor.execute(
                "SELECT pg_total_relation_size(c.oid), c.reltuples::bigint FROM pg_class c "
                "WHERE c.oid = %s::regclass",
                [table],
            )
            size, estimate = cursor.fetchone()
            exact = model.objects.order_by()[: EXACT_COUNT_LIMIT + 1].count()
            estimated = exact > EXACT_COUNT_LIMIT
            rows = max(estimate, exact) if estimated else exact
            tables[key] = {"rows": rows, "estimated": estimated, "bytes": size}
    oldest = (
        JobRecord.objects.filter(created_at__isnull=False)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return {**tables, "bytes": tables["jobs"]["bytes"] + tables["attempts"]["bytes"],
            "oldest": oldest}  # fmt: skip


def retention_table() -> list[dict[str, Any]]:
    """Each queue's age limits, days per final state (0: kept for ever)."""
    return [{"queue": q, **{s: retention_days(q, s) for s in PRUNABLE}}
            for q in settings.JOBYARD_QUEUES]  # fmt: skip
