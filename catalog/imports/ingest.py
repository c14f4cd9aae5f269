"""Importing a stored batch: validate each record, write good rows in chunks.

Each chunk is one transaction: its observations (through COPY), its row errors, and the
batch's counters and `resume_line`. A chunk that fails rolls back whole and the batch
keeps the state of the last committed one, so a retry (or a rerun after a crash) resumes
after `resume_line`: every row is written once. The last chunk's transaction also marks the
batch `calculating`: every row is written, and the job then starts the calculation's flow
(catalog.imports.service.start_calculation), which marks it completed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.imports.readers import Position, Record, read_csv, read_json
from catalog.imports.rows import DatasetError, Row, parse_row
from catalog.models import ImportBatch, ImportRowError, Observation

Progress = Callable[[int], Any]

_COLUMNS = ("batch_id", "tenant_id", "line", "designation", "observed_at", "magnitude",
            "observer", "method")  # fmt: skip


def claim(batch_id: int, job_id: str = "") -> ImportBatch | None:
    """Mark the batch running (for `job_id`), or None when its rows are all written."""
    claimed = (
        ImportBatch.objects.filter(pk=batch_id)
        .exclude(status__in=ImportBatch.IMPORTED)
        .update(
            status=ImportBatch.RUNNING,
            job_id=job_id or F("job_id"),
            failed_reason="",
            started_at=Coalesce(F("started_at"), timezone.now()),
        )  # fmt: skip
    )
    return ImportBatch.objects.get(pk=batch_id) if claimed else None


def summary(batch: ImportBatch) -> dict[str, Any]:
    return {"batchId": batch.pk, "status": batch.status, "rowsTotal": batch.rows_total,
            "rowsImported": batch.rows_imported, "rowsFailed": batch.rows_failed}  # fmt: skip


def import_batch(
    batch_id: int,
    *,
    job_id: str = "",
    progress: Progress | None = None,
    chunk_rows: int | None = None,
) -> dict[str, Any]:
    """Import the batch's stored file; its counts as a dict. DatasetError (and the batch
    marked failed) when the file as a whole is unusable."""
    chunk_rows = chunk_rows or settings.CATALOG_IMPORT_CHUNK_ROWS
    batch = claim(batch_id, job_id)
    if batch is None:  # imported already: a repeated trigger is a no-op
        return {**summary(ImportBatch.objects.get(pk=batch_id)), "skipped": True}
    if not batch.file:
        _fail(batch, DatasetError(f"batch {batch_id} has no stored file"))
    writer = _ChunkWriter(batch, progress)
    try:
        with batch.file.open("rb") as binary:
            writer.size = batch.file.size or 1
            position = Position()
            if batch.format == ImportBatch.JSON:
                records = read_json(binary, position, writer.size)
            else:
                records = read_csv(binary, position)
            for record in records:
                if record.line <= batch.resume_line:
                    continue  # committed by an earlier run
                writer.add(record)
                if len(writer.rows) + len(writer.errors) >= chunk_rows:
                    writer.commit(position)
            writer.commit(position, last=True)
    except DatasetError as exc:
        _fail(batch, exc)
    batch.refresh_from_db()
    return summary(batch)


def _fail(batch: ImportBatch, exc: DatasetError) -> None:
    ImportBatch.objects.filter(pk=batch.pk).update(
        status=ImportBatch.FAILED, failed_reason=str(exc), finished_at=timezone.now()
    )
    raise exc


class _ChunkWriter:
    def __init__(self, batch: ImportBatch, progress: Progress | None) -> None:
        self.batch = batch
        self.progress = progress
        self.size = 1
        self.rows: list[tuple] = []
        self.errors: list[ImportRowError] = []
        self.failed = 0
        self.read = 0
        self.last_line = batch.resume_line
        self.errors_kept = ImportRowError.objects.filter(batch=batch).count()
        self.max_errors = settings.CATALOG_IMPORT_MAX_ERRORS

    def add(self, record: Record) -> None:
        self.read += 1
        self.last_line = max(self.last_line, record.line)
        row: Row | None = None
        problems = record.problems
        if record.values is not None and not problems:
            row, problems = parse_row(record.values)
        if row is not None:
            self.rows.append((self.batch.pk, self.batch.tenant_id, record.line, *row))
            return
        self.failed += 1
        for name, message in problems:
            if self.errors_kept + len(self.errors) < self.max_errors:
                self.errors.append(ImportRowError(batch_id=self.batch.pk, line=record.line,
                                                  field=name, message=message[:500]))  # fmt: skip

    def commit(self, position: Position, last: bool = False) -> None:
        with transaction.atomic():
            if self.rows:
                write_observations(self.rows)
            if self.errors:
                ImportRowError.objects.bulk_create(self.errors)
            changes: dict[str, Any] = {
                "rows_total": F("rows_total") + self.read,
                "rows_imported": F("rows_imported") + len(self.rows),
                "rows_failed": F("rows_failed") + self.failed,
                "resume_line": self.last_line,
            }
            if last:
                changes.update(status=ImportBatch.CALCULATING)
            ImportBatch.objects.filter(pk=self.batch.pk).update(**changes)
        self.errors_kept += len(self.errors)
        self.rows, self.errors, self.failed, self.read = [], [], 0, 0
        if self.progress is not None:
            self.progress(100 if last else min(99, position.bytes * 100 // self.size))


def write_observations(rows: list[tuple]) -> None:
    """One COPY for the chunk: several times faster than INSERTs, and streamed."""
    table = connection.ops.quote_name(Observation._meta.db_table)
    sql = f"COPY {table} ({', '.join(_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)
