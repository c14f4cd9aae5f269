"""The recorder: copies the registry's state changes into the job archive in PostgreSQL.

Each queue's event stream (`jy:{queue}:events`) is read with a Redis consumer group
(RECORDER_GROUP). For each batch the recorder reads the current hash of every job the
events name (one pipelined round trip per queue), upserts one JobRecord per job and the
JobAttempt rows the events open and close, commits, and only then XACKs the entries: a
recorder that dies mid-batch leaves its entries pending, and the next batch (of any
recorder) claims and applies them again. Applying a batch twice gives the same rows.

Several recorders may run (one per host, say): they take turns batch by batch under a
PostgreSQL advisory lock, because attempt history needs each job's events in stream order,
and two recorders applying interleaved slices of one job's events could not keep it.

Limits: streams are capped at JOBYARD_EVENTS_MAXLEN entries per queue; a recorder that
falls that far behind loses the entries trimmed before it read them (`recorder_lag()`
tells how far behind it is). A job that left the registry before the recorder read its
hash (removed on completion, say) is archived from its events alone: state, result, reason
and times, but no name or data unless an earlier batch saw them.
"""

from __future__ import annotations

import json
import os
import socket
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max

from tasks import keys
from tasks.connection import get_redis
from tasks.job import Job, get_jobs
from tasks.models import JobAttempt, JobRecord

RECORDER_GROUP = "recorder"
#: An arbitrary constant: the advisory lock key recorders take turns on.
LOCK_KEY = 0x4A59_5245  # "JYRE"
#: Every JobRecord column the recorder writes, on insert and on conflict alike.
UPDATE_FIELDS = [
    "name", "state", "data", "opts", "returnvalue", "failed_reason", "stacktrace",
    "attempts_made", "progress", "created_at", "processed_on", "finished_on", "worker",
    "removed_at", "updated_at",
]  # fmt: skip


@dataclass(frozen=True)
class Entry:
    queue: str
    id: str
    event: str
    job_id: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def at(self) -> datetime:
        return _ms(int(self.id.split("-")[0]))


def _ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, tz=UTC) if value else None


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_groups_ready: set[tuple[int, str]] = set()


def _ensure_groups(client: redis.Redis, queues: Iterable[str]) -> None:
    for queue in queues:
        key = keys.events(queue)
        if (id(client), key) in _groups_ready:
            continue
        try:
            # From the stream's first entry: a new recorder archives what is still there.
            client.xgroup_create(key, RECORDER_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        _groups_ready.add((id(client), key))


def _decode(queue: str, entries: list) -> list[Entry]:
    out = []
    for entry_id, raw in entries:
        if raw is None:  # claimed, but trimmed from the stream meanwhile
            continue
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        event, job_id = fields.pop("event", ""), fields.pop("jobId", "")
        out.append(Entry(queue, entry_id.decode(), event, job_id, fields))
    return out


def _read(client: redis.Redis, batch_size: int, block_ms: int | None) -> list[Entry]:
    """Entries left pending by a recorder that failed first, else new ones."""
    queues = list(settings.JOBYARD_QUEUES)
    me = consumer_name()
    entries: list[Entry] = []
    for queue in queues:
        # Under the lock no other recorder is mid-batch: whatever is pending is abandoned.
        _, claimed, *_ = client.xautoclaim(
            keys.events(queue), RECORDER_GROUP, me, min_idle_time=0, count=batch_size
        )
        entries += _decode(queue, claimed)
    if entries:
        return entries
    reply = client.xreadgroup(
        RECORDER_GROUP, me, {keys.events(q): ">" for q in queues},
        count=batch_size, block=block_ms,
    )  # fmt: skip
    by_key = {keys.events(q): q for q in queues}
    for key, items in reply or []:
        entries += _decode(by_key[key.decode()], items)
    return entries


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
    client = get_redis()
    _ensure_groups(client, settings.JOBYARD_QUEUES)
    with connection.cursor() as cursor:
        if not _lock(cursor):
            return 0
        try:
            try:
                entries = _read(client, batch_size, block_ms)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream was deleted (FLUSHDB, a key cleanup): make the group again.
                _groups_ready.clear()
                _ensure_groups(client, settings.JOBYARD_QUEUES)
                entries = _read(client, batch_size, block_ms)
            if not entries:
                return 0
            apply_entries(entries)  # commits
            pipe = client.pipeline(transaction=False)
            for queue, ids in _ids_by_queue(entries).items():
                pipe.xack(keys.events(queue), RECORDER_GROUP, *ids)
            pipe.execute()
            return len(entries)
        finally:
            _unlock(cursor)


def _ids_by_queue(entries: list[Entry]) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        ids[entry.queue].append(entry.id)
    return ids


def recorder_lag() -> dict[str, int | None]:
    """Per queue, entries the recorder has not read yet (None: unknown, e.g. no group)."""
    client = get_redis()
    lag: dict[str, int | None] = {}
    for queue in settings.JOBYARD_QUEUES:
        try:
            groups = client.xinfo_groups(keys.events(queue))
        except redis.ResponseError:  # no stream yet
            groups = []
        found = [g for g in groups if g["name"].decode() == RECORDER_GROUP]
        lag[queue] = found[0].get("lag") if found else None
    return lag


# --- applying a batch --------------------------------------------------------------------


def record_from_job(job: Job) -> JobRecord:
    return JobRecord(
        queue=job.queue, job_id=job.id, name=job.name,
        state="waiting" if job.state == "paused" else job.state,
        data=job.data, opts=job.opts, returnvalue=job.returnvalue,
        failed_reason=job.failed_reason or "", stacktrace=job.stacktrace,
        attempts_made=job.attempts_made, progress=job.progress,
        created_at=_ms(job.created_at), processed_on=_ms(job.processed_on),
        finished_on=_ms(job.finished_on), worker=job.worker or "", removed_at=None,
    )  # fmt: skip


def _fold(row: JobRecord, events: list[Entry]) -> None:
    """What the events say about a job whose hash is gone (removed, trimmed)."""
    if row.created_at is None:  # its first event we saw: about when it was created
        row.created_at = events[0].at
    for e in events:
        f = e.fields
        if e.event == "waiting" or e.event == "stalled":
            row.state = "waiting"
        elif e.event in ("delayed", "retrying"):
            row.state = "delayed"
        elif e.event == "active":
            row.state, row.processed_on, row.worker = "active", e.at, f.get("worker", row.worker)
        elif e.event == "progress":
            row.progress = json.loads(f["progress"])
        elif e.event == "completed":
            row.state, row.finished_on = "completed", e.at
            row.returnvalue = json.loads(f.get("returnvalue", "null"))
            row.attempts_made += 1
        elif e.event == "failed":
            row.state, row.finished_on = "failed", e.at
            row.failed_reason = f.get("failedReason", row.failed_reason)
        elif e.event == "removed":
            row.removed_at = e.at
            return
        if "attemptsMade" in f:
            row.attempts_made = int(f["attemptsMade"])
        if "failedReason" in f:
            row.failed_reason = f["failedReason"]


def apply_entries(entries: list[Entry]) -> None:
    """Upsert the archive rows for these stream entries in one transaction."""
    by_job: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for entry in entries:
        if entry.job_id:  # paused/resumed events name no job
            by_job[(entry.queue, entry.job_id)].append(entry)
    if not by_job:
        return
    for events in by_job.values():
        events.sort(key=lambda e: tuple(int(part) for part in e.id.split("-")))
    ids_by_queue: dict[str, list[str]] = defaultdict(list)
    for queue, job_id in by_job:
        ids_by_queue[queue].append(job_id)
    live = {(j.queue, j.id): j for q, ids in ids_by_queue.items() for j in get_jobs(q, ids, False)}

    with transaction.atomic():
        existing: dict[tuple[str, str], JobRecord] = {}
        for queue, ids in ids_by_queue.items():
            for row in JobRecord.objects.filter(queue=queue, job_id__in=ids):
                existing[(row.queue, row.job_id)] = row
        records, reborn = [], []
        for key in sorted(by_job):
            row, job = existing.get(key), live.get(key)
            if job is not None:
                record = record_from_job(job)
                if row and row.created_at and record.created_at != row.created_at:
                    reborn.append(row.pk)  # the id was reused by a new job
            elif row is not None and row.removed_at is not None:
                continue  # removed (or cancelled) and already recorded: keep it as it was
            else:
                record = row or JobRecord(queue=key[0], job_id=key[1], state="waiting")
                _fold(record, by_job[key])
            records.append(record)
        if not records:
            return
        saved = JobRecord.objects.bulk_create(
            records, update_conflicts=True, unique_fields=["queue", "job_id"],
            update_fields=UPDATE_FIELDS,
        )  # fmt: skip
        if reborn:
            JobAttempt.objects.filter(job_id__in=reborn).delete()
        _record_attempts({(r.queue, r.job_id): r.pk for r in saved}, by_job)


def _record_attempts(pks: dict[tuple[str, str], int], by_job: dict) -> None:
    """Open an attempt per `active` event, close it on completed/retrying/failed/stalled."""
    relevant = {"active", "completed", "retrying", "failed", "stalled"}
    jobs = {pk: by_job[key] for key, pk in pks.items() if relevant & {e.event for e in by_job[key]}}
    if not jobs:
        return
    latest: dict[int, JobAttempt] = {}
    numbers = dict(
        JobAttempt.objects.filter(job_id__in=jobs)
        .order_by()
        .values("job_id")
        .annotate(top=Max("number"))
        .values_list("job_id", "top")
    )
    known_events = {
        (a.job_id, a.event_id): a for a in JobAttempt.objects.filter(job_id__in=jobs).order_by()
    }
    for attempt in known_events.values():
        if attempt.number == numbers.get(attempt.job_id):
            latest[attempt.job_id] = attempt
    created: list[JobAttempt] = []
    changed: dict[int, JobAttempt] = {}
    for pk, events in jobs.items():
        current = latest.get(pk)
        for e in events:
            if e.event == "active":
                replayed = known_events.get((pk, e.id))
                if replayed is not None:
                    current = replayed
                    continue
                if current is not None and current.outcome == JobAttempt.RUNNING:
                    # Its closing event was lost (the stream was trimmed before it was read).
                    current.outcome = JobAttempt.STALLED
                    changed[id(current)] = current
                numbers[pk] = numbers.get(pk, 0) + 1
                current = JobAttempt(
                    job_id=pk, number=numbers[pk], started_at=e.at, event_id=e.id,
                    worker=e.fields.get("worker", ""),
                )  # fmt: skip
                created.append(current)
                known_events[(pk, e.id)] = current
            elif e.event in relevant and current is not None:
                if current.outcome != JobAttempt.RUNNING:
                    continue  # already closed: a replayed event, or one of a lost attempt
                current.finished_at = e.at
                current.outcome = {
                    "completed": JobAttempt.COMPLETED, "retrying": JobAttempt.RETRYING,
                    "failed": JobAttempt.FAILED, "stalled": JobAttempt.STALLED,
                }[e.event]  # fmt: skip
                current.failed_reason = e.fields.get("failedReason", "")
                if current.pk is not None:
                    changed[id(current)] = current
    JobAttempt.objects.bulk_create(created)
    if changed:
        JobAttempt.objects.bulk_update(
            list(changed.values()), ["finished_at", "outcome", "failed_reason"]
        )
