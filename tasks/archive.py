"""The job archive's one writer: every JobRecord, JobAttempt, ArchiveError and ArchiveGap
row is written here.

Two callers: the recorder (tasks/recorder.py), which hands over each batch of events it
reads from the streams (`apply`), and the platform's job operations (tasks/control.py),
which archive a job they removed from the registry at once (`record_removed`) rather than
wait for the recorder. Applying the same events twice gives the same rows: a snapshot
upsert is idempotent, and an attempt is keyed by the stream id of the `active` event that
opened it.

A job that left the registry before its events were applied (removed on completion, say)
is archived from its events alone: state, result, reason and times, but no name or data
unless an earlier batch saw them. Once a row has `removed_at`, events about a job whose
hash is gone no longer change it (a cancelled job stays cancelled).

Values PostgreSQL refuses are escaped on the way in (`storable`, applied to every text and
JSON column written here): a NUL character becomes the six characters `\\u0000`, a lone
surrogate `\\udXXX`, in strings and JSON keys alike. The registry keeps the job as it was.

The recorder's faults are written here too: an event it could not apply (`record_errors`,
an ArchiveError row each) and events trimmed from a stream before it read them
(`record_gap`, after `fill_from_registry` archived what the registry still holds).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.db import DataError, IntegrityError, models, transaction
from django.db.models import Max
from django.utils import timezone

from tasks.events import Event
from tasks.job import Job, get_jobs
from tasks.models import ArchiveError, ArchiveGap, JobAttempt, JobRecord
from tasks.queue import Queue
from tasks.states import FINISHED, STATES

#: What applying an event (or archiving a job) raises when the event or the job cannot be
#: archived, rather than because PostgreSQL or Redis is away: PostgreSQL refused the row
#: (DataError: a value too long, say; IntegrityError), or the event is malformed (a field
#: that is not JSON or not a number). Outages (OperationalError, InterfaceError, Redis's
#: ConnectionError) are not among them: whatever raised those is worth trying again.
DATA_ERRORS = (DataError, IntegrityError, ValueError, TypeError, KeyError)

#: Every JobRecord column written, on insert and on conflict alike.
UPDATE_FIELDS = [
    "name", "state", "data", "opts", "returnvalue", "failed_reason", "stacktrace",
    "attempts_made", "progress", "created_at", "processed_on", "finished_on", "worker",
    "removed_at", "updated_at",
]  # fmt: skip


#: What PostgreSQL refuses in text and JSONB: NUL, and UTF-16 surrogates (a Python string
#: holds one only unpaired: json.loads joins a valid pair into one character).
_REFUSED = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


def storable(value: Any) -> Any:
    """`value` with what PostgreSQL refuses escaped: NUL as the text `\\u0000`, a lone
    surrogate as `\\udXXX`, in every string of a JSON value, keys included. Unchanged (the
    same object) when there is nothing to escape, which one json.dumps tells (about 4 us
    for a small object): it writes NUL as \\u0000 and any surrogate as \\udXXX (a
    character past U+FFFF too, as a pair: that one walks the value for nothing)."""
    if isinstance(value, str):
        return _REFUSED.sub(_escape, value) if _REFUSED.search(value) else value
    if not isinstance(value, dict | list):
        return value
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = None  # not JSON after all: walk it
    if text is not None and "\\u0000" not in text and "\\ud" not in text:
        return value
    if isinstance(value, dict):
        return {storable(k) if isinstance(k, str) else k: storable(v) for k, v in value.items()}
    return [storable(v) for v in value]


_TEXT_COLUMNS = (models.CharField, models.TextField, models.JSONField)
_text_columns: dict[type, list[str]] = {}


def _storable_row(row: models.Model) -> models.Model:
    """Escape, in place, every text and JSON column of an archive row about to be written."""
    names = _text_columns.get(type(row))
    if names is None:
        names = [f.attname for f in row._meta.concrete_fields if isinstance(f, _TEXT_COLUMNS)]
        _text_columns[type(row)] = names
    for name in names:
        value = getattr(row, name)
        escaped = storable(value)
        if escaped is not value:
            setattr(row, name, escaped)
    return row


def _ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, tz=UTC) if value else None


def _at(event: Event) -> datetime:
    """When the event was written: its stream id's milliseconds."""
    return _ms(int(event.id.split("-")[0]))


def _archive_state(state: str | None) -> str | None:
    # Paused is the queue's state, and no per-job event says when it ends.
    return "waiting" if state == "paused" else state


def record_from_job(job: Job) -> JobRecord:
    """The archive row for a registry job, unsaved (the admin shows one for a live job the
    recorder has not written yet)."""
    return JobRecord(
        queue=job.queue, job_id=job.id, name=job.name, state=_archive_state(job.state),
        data=job.data, opts=job.opts, returnvalue=job.returnvalue,
        failed_reason=job.failed_reason or "", stacktrace=job.stacktrace,
        attempts_made=job.attempts_made, progress=job.progress,
        created_at=_ms(job.created_at), processed_on=_ms(job.processed_on),
        finished_on=_ms(job.finished_on), worker=job.worker or "", removed_at=None,
    )  # fmt: skip


def _upsert(records: list[JobRecord]) -> list[JobRecord]:
    for record in records:
        _storable_row(record)
    return JobRecord.objects.bulk_create(
        records, update_conflicts=True, unique_fields=["queue", "job_id"],
        update_fields=UPDATE_FIELDS,
    )  # fmt: skip


def record_removed(job: Job, state: str) -> JobRecord:
    """Archive `job`, just removed from the registry, as `state` (the one it had, or
    `cancelled`) with `removed_at` now. The recorder's later `removed` event keeps it."""
    row = record_from_job(job)
    row.state = _archive_state(state)
    row.removed_at = timezone.now()
    _upsert([row])
    return row


def _fold(row: JobRecord, events: list[Event]) -> None:
    """What the events say about a job whose hash is gone (removed, trimmed)."""
    if row.created_at is None:  # its first event we saw: about when it was created
        row.created_at = _at(events[0])
    for e in events:
        f = e.fields
        if e.event == "waiting" or e.event == "stalled":
            row.state = "waiting"
        elif e.event == "waiting-children":
            row.state = "waiting-children"
        elif e.event in ("delayed", "retrying"):
            row.state = "delayed"
        elif e.event == "active":
            row.state, row.processed_on, row.worker = "active", _at(e), f.get("worker", row.worker)
        elif e.event == "progress":
            row.progress = json.loads(f["progress"])
        elif e.event == "completed":
            row.state, row.finished_on = "completed", _at(e)
            row.returnvalue = json.loads(f.get("returnvalue", "null"))
            row.attempts_made += 1
        elif e.event == "failed":
            row.state, row.finished_on = "failed", _at(e)
            row.failed_reason = f.get("failedReason", row.failed_reason)
        elif e.event == "removed":
            row.removed_at = _at(e)
            return
        if "attemptsMade" in f:
            row.attempts_made = int(f["attemptsMade"])
        if "failedReason" in f:
            row.failed_reason = f["failedReason"]


def apply(events: list[Event]) -> None:
    """Upsert the archive rows for these stream events in one transaction.

    Reads the current hash of every job the events name (one pipelined round trip per
    queue), upserts one JobRecord per job, and opens and closes its JobAttempt rows.
    """
    by_job: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in events:
        if event.job_id:  # paused/resumed events name no job
            by_job[(event.queue, event.job_id)].append(event)
    if not by_job:
        return
    for job_events in by_job.values():
        job_events.sort(key=lambda e: tuple(int(part) for part in e.id.split("-")))
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
        saved = _upsert(records)
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
                    job_id=pk, number=numbers[pk], started_at=_at(e), event_id=e.id,
                    worker=e.fields.get("worker", ""),
                )  # fmt: skip
                created.append(current)
                known_events[(pk, e.id)] = current
            elif e.event in relevant and current is not None:
                if current.outcome != JobAttempt.RUNNING:
                    continue  # already closed: a replayed event, or one of a lost attempt
                current.finished_at = _at(e)
                current.outcome = {
                    "completed": JobAttempt.COMPLETED, "retrying": JobAttempt.RETRYING,
                    "failed": JobAttempt.FAILED, "stalled": JobAttempt.STALLED,
                }[e.event]  # fmt: skip
                current.failed_reason = e.fields.get("failedReason", "")
                if current.pk is not None:
                    changed[id(current)] = current
    for attempt in [*created, *changed.values()]:
        _storable_row(attempt)
    JobAttempt.objects.bulk_create(created)
    if changed:
        JobAttempt.objects.bulk_update(
            list(changed.values()), ["finished_at", "outcome", "failed_reason"]
        )


# --- the recorder's faults ---------------------------------------------------------------


def record_errors(bad: list[tuple[Event, str]]) -> None:
    """Keep each event the recorder could not apply, with why, as an ArchiveError row (one
    per stream entry: an event set aside twice, after a crash before its XACK, is one row)."""
    rows = [
        _storable_row(
            ArchiveError(
                queue=event.queue,
                stream_id=event.id,
                job_id=event.job_id[:128],  # a malformed event's may be longer than a row's
                event={"id": event.id, **event.to_dict()},
                error=error,
            )
        )
        for event, error in bad
    ]
    ArchiveError.objects.bulk_create(rows, ignore_conflicts=True)


def record_gap(queue: str, after_id: str, before_id: str, events_lost: int,
               jobs_recovered: int, jobs_unrecoverable: int) -> ArchiveGap:  # fmt: skip
    """Keep a gap the recorder found in `queue`'s stream. Found again from the same place
    (its group could not be moved on, say), it updates that row rather than add one."""
    gap, _ = ArchiveGap.objects.update_or_create(
        queue=queue, after_id=after_id,
        defaults={
            "before_id": before_id, "events_lost": events_lost,
            "jobs_recovered": jobs_recovered, "jobs_unrecoverable": jobs_unrecoverable,
        },
    )  # fmt: skip
    return gap


#: The columns compared to decide whether an archive row is older than the registry's job.
_SNAPSHOT = [f for f in UPDATE_FIELDS if f != "updated_at"]


def fill_from_registry(queue: str, page: int = 500) -> int:
    """Archive every job of `queue` the registry holds that the archive lacks or holds in an
    older version; how many rows that wrote. For a gap: the events that would have told
    the recorder about these jobs are gone, their hashes are not.

    Pages through every state (`Queue.get_jobs`, `page` jobs a round trip). A job that
    moves meanwhile may be missed or seen twice: its move wrote a new event, which the
    recorder reads after the gap anyway.
    """
    listing = Queue(queue)
    total = sum(listing.counts().values())
    written = 0
    for start in range(0, total, page):
        written += _refresh(queue, listing.get_jobs(STATES, start, start + page - 1))
    return written


def _refresh(queue: str, jobs: list[Job]) -> int:
    if not jobs:
        return 0
    existing = {
        row.job_id: row
        for row in JobRecord.objects.filter(queue=queue, job_id__in=[j.id for j in jobs])
    }
    records, reborn = [], []
    for job in jobs:
        record = _storable_row(record_from_job(job))
        row = existing.get(job.id)
        if row is not None:
            if row.created_at and record.created_at != row.created_at:
                reborn.append(row.pk)  # the id was reused by a new job
            elif row.removed_at is not None:
                continue  # removed (cancelled) since its hash was read: the row knows better
            elif all(getattr(row, f) == getattr(record, f) for f in _SNAPSHOT):
                continue  # the archive is up to date
        records.append(record)
    if not records:
        return 0
    try:
        _write_refreshed(records, reborn)
    except DATA_ERRORS:
        # One job PostgreSQL refuses (its events will be archive errors too): the others
        # one by one, so that it does not keep them out.
        written = 0
        for record in records:
            with contextlib.suppress(*DATA_ERRORS):
                _write_refreshed([record], reborn)
                written += 1
        return written
    return len(records)


def _write_refreshed(records: list[JobRecord], reborn: list[int]) -> None:
    with transaction.atomic():
        saved = _upsert(records)
        if reborn:
            JobAttempt.objects.filter(job_id__in=reborn).delete()
        _close_lost_attempts({r.pk: r for r in saved if r.state in FINISHED})


def _close_lost_attempts(finished: dict[int, JobRecord]) -> None:
    """An attempt still running in the archive for a job the registry says finished: its
    closing event was lost in the gap. It is closed as the job ended (the likeliest ending:
    a retry lost with it would have been a `retrying` attempt)."""
    if not finished:
        return
    attempts = list(JobAttempt.objects.filter(job_id__in=finished, outcome=JobAttempt.RUNNING))
    for attempt in attempts:
        job = finished[attempt.job_id]
        attempt.finished_at = job.finished_on
        if job.state == "completed":
            attempt.outcome = JobAttempt.COMPLETED
        else:
            attempt.outcome, attempt.failed_reason = JobAttempt.FAILED, job.failed_reason
    if attempts:
        JobAttempt.objects.bulk_update(attempts, ["finished_at", "outcome", "failed_reason"])


#: The columns `archive_rows` yields, in order: what apps may read of the archive.
ARCHIVE_ROW_FIELDS = ("queue", "job_id", "name", "state", "attempts_made", "created_at",
                      "processed_on", "finished_on")  # fmt: skip


def archive_rows(*, since: datetime | None = None, until: datetime | None = None,
                 queues: list[str] | None = None, names: list[str] | None = None,
                 chunk_size: int = 2000) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Archived jobs created in [since, until), oldest first, as dicts of ARCHIVE_ROW_FIELDS
    (timestamps are aware datetimes or None): the archive's public read, for apps' reports.

    Read with a server-side cursor, `chunk_size` rows per fetch: memory stays flat however
    many rows match. Run it outside a transaction or inside one; it holds no lock.
    """
    rows = JobRecord.objects.all()
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    if queues:
        rows = rows.filter(queue__in=queues)
    if names:
        rows = rows.filter(name__in=names)
    rows = rows.order_by("created_at", "id").values_list(*ARCHIVE_ROW_FIELDS)
    for values in rows.iterator(chunk_size=chunk_size):
        yield dict(zip(ARCHIVE_ROW_FIELDS, values, strict=True))
