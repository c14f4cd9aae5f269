"""Starting an import, from the admin, the API or the `ingest-dataset` job itself, and the
row errors as CSV. One place builds job ids and stores uploads."""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone

import tasks  # tasks.enqueue, not `from tasks import enqueue`: import-linter reads that as
from catalog.imports.calculate import parts
from catalog.imports.fetch import download
from catalog.imports.rows import DatasetError
from catalog.models import ImportBatch, ImportRowError

#                 the private module tasks.enqueue (the domain-apps contract)
from tasks import Job, JobNode, PermanentError

#: Tenant and dataset names: no `-`, so that a job id `ingest-{tenant}-{dataset}-{version}`
#: names one (tenant, dataset, version) only; the three fit the registry's 128 characters.
NAME_PATTERN = r"^[A-Za-z0-9_.]{1,40}$"
VERSION_PATTERN = r"^[A-Za-z0-9_.:-]{1,32}$"
_NAME = re.compile(NAME_PATTERN)
_VERSION = re.compile(VERSION_PATTERN)


def ingest_job_id(tenant_id: str, dataset: str, version_tag: str) -> str:
    return f"ingest-{tenant_id}-{dataset}-{version_tag}"


def calc_job_id(tenant_id: str, batch_id: int, part: int | None = None) -> str:
    """A calculation's job id: the whole batch's (run by hand), or part `part` of its flow."""
    return f"calc-{tenant_id}-{batch_id}" + ("" if part is None else f"-{part}")


def finish_job_id(tenant_id: str, batch_id: int) -> str:
    return f"finish-import-{tenant_id}-{batch_id}"


def calculation_flow(batch: ImportBatch) -> dict[str, Any]:
    """The flow that calculates an imported batch: the parent `finish-import`, and a
    `calculate-batch` child per range of designations (calculate.parts). Ids are the batch's
    own, so the same batch always makes the same flow, and a second one creates nothing.
    A child's failure is left for the parent to handle (ignoreDependencyOnFailure): the
    parent runs once every child ended, and marks the import failed naming the child."""
    ids = {"tenant_id": batch.tenant_id, "batch_id": batch.pk}
    ranges = parts(batch.pk, settings.CATALOG_CALC_PART_DESIGNATIONS)
    children = [
        {"name": "calculate-batch", "data": {**ids, "part": n, "after": after, "upto": upto},
         "opts": {"job_id": calc_job_id(batch.tenant_id, batch.pk, n),
                  "ignore_dependency_on_failure": True}}
        for n, (after, upto) in enumerate(ranges, start=1)
    ]  # fmt: skip
    return {"name": "finish-import", "data": ids, "children": children,
            "opts": {"job_id": finish_job_id(batch.tenant_id, batch.pk)}}  # fmt: skip


def start_calculation(batch: ImportBatch) -> JobNode:
    """Create the calculation's flow of a batch whose rows are all written (all of it in one
    script call, or nothing); the root's node. Idempotent: a retried ingest, or a second
    call, finds the parent's job id and creates nothing."""
    return tasks.enqueue_flow(calculation_flow(batch))


def check_names(tenant_id: str, dataset: str, version_tag: str) -> dict[str, str]:
    """Each bad name and why: {} when all three are fine."""
    problems = {}
    for field, value, pattern in (("tenantId", tenant_id, _NAME), ("dataset", dataset, _NAME),
                                  ("versionTag", version_tag, _VERSION)):  # fmt: skip
        if not isinstance(value, str) or not pattern.match(value):
            problems[field] = f"must match {pattern.pattern}"
    return problems


def format_of(name: str, declared: str | None = None) -> str:
    """csv or json: as declared, else from the file name's extension (csv by default)."""
    if declared:
        return declared
    suffix = PurePath(name).suffix.lower()
    return ImportBatch.JSON if suffix in (".json", ".jsonl", ".ndjson") else ImportBatch.CSV


def start_import(*, tenant_id: str, dataset: str, version_tag: str, upload: Any = None,
                 url: str = "", fmt: str | None = None) -> tuple[ImportBatch, Job | None, bool]:  # fmt: skip
    """Store the upload on a new batch and enqueue its import (sent on commit).

    Returns (batch, job, created). A (tenant, dataset, version) that exists is not stored or
    enqueued again: that batch comes back with created False (its job is `ingest_job_id`).
    """
    existing = ImportBatch.objects.filter(
        tenant_id=tenant_id, dataset=dataset, version_tag=version_tag
    ).first()
    if existing is not None:
        return existing, None, False
    if upload is not None:
        source = format_of(upload.name, fmt)
        fmt = source
    else:
        source, fmt = ImportBatch.URL, fmt or format_of(url)
    job_id = ingest_job_id(tenant_id, dataset, version_tag)
    try:
        with transaction.atomic():
            batch = ImportBatch(tenant_id=tenant_id, dataset=dataset, version_tag=version_tag,
                                source=source, format=fmt, url=url, job_id=job_id)  # fmt: skip
            if upload is not None:
                # Streams the upload (a temporary file past 2.5 MB) to storage in chunks.
                batch.file.save(f"{tenant_id}-{dataset}-{version_tag}.{fmt}", upload, save=False)
            batch.save()
            job = enqueue_import(batch)
    except IntegrityError:  # a concurrent request made it first
        existing = ImportBatch.objects.get(
            tenant_id=tenant_id, dataset=dataset, version_tag=version_tag
        )
        return existing, None, False
    return batch, job, True


def enqueue_import(batch: ImportBatch) -> Job:
    """Enqueue the import of a saved batch; inside a transaction it is sent on commit."""
    data = {"tenant_id": batch.tenant_id, "source": batch.source, "dataset": batch.dataset,
            "version_tag": batch.version_tag, "batch_id": batch.pk}  # fmt: skip
    return tasks.enqueue("ingest-dataset", data, job_id=batch.job_id)


def url_batch(tenant_id: str, dataset: str, version_tag: str, url: str, fmt: str | None,
              job_id: str) -> ImportBatch:  # fmt: skip
    """The batch of a `url` import triggered without one (the CLI, a schedule)."""
    batch, _ = ImportBatch.objects.get_or_create(
        tenant_id=tenant_id, dataset=dataset, version_tag=version_tag,
        defaults={"source": ImportBatch.URL, "format": fmt or format_of(url), "url": url,
                  "job_id": job_id},
    )  # fmt: skip
    return batch


def fetch_into(batch: ImportBatch) -> None:
    """Download a `url` batch's dataset into its file (once: a rerun reuses it)."""
    if batch.file:
        return
    with tempfile.TemporaryFile() as spool:
        try:
            download(batch.url, spool, max_bytes=settings.CATALOG_MAX_UPLOAD_BYTES,
                     allow_private=settings.CATALOG_IMPORT_ALLOW_PRIVATE_URLS)  # fmt: skip
        except DatasetError as exc:
            ImportBatch.objects.filter(pk=batch.pk).update(
                status=ImportBatch.FAILED, failed_reason=str(exc)
            )
            raise
        spool.seek(0)
        name = f"{batch.tenant_id}-{batch.dataset}-{batch.version_tag}.{batch.format}"
        batch.file.save(name, File(spool), save=False)
    ImportBatch.objects.filter(pk=batch.pk).update(file=batch.file.name)


def give_up(batch_id: int, attempt: int, attempts: int, exc: BaseException) -> None:
    """Mark a batch failed after its job's last attempt (or a permanent error), with the
    reason; a batch already completed or failed (a DatasetError says why itself) is left.
    A `calculating` one is included: its job failed to create the calculation's flow."""
    reason = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, PermanentError):
        reason = f"gave up after attempt {attempt} of {attempts}: {reason}"
    ImportBatch.objects.filter(
        pk=batch_id,
        status__in=[ImportBatch.PENDING, ImportBatch.RUNNING, ImportBatch.CALCULATING],
    ).update(status=ImportBatch.FAILED, failed_reason=reason[:2000], finished_at=timezone.now())


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: object) -> object:
    """A cell a spreadsheet will not run as a formula (messages quote the uploaded text)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def errors_csv(batch: ImportBatch) -> Iterator[str]:
    """The batch's row errors as CSV lines (line, field, message), streamed from the
    database: a batch with thousands of errors is never held in memory."""
    writer = csv.writer(_Echo())
    yield writer.writerow(["line", "field", "message"])
    rows = (
        ImportRowError.objects.filter(batch=batch)
        .order_by("line", "id")
        .values_list("line", "field", "message")
    )
    for line, field, message in rows.iterator(chunk_size=2000):
        yield writer.writerow([line, _cell(field), _cell(message)])
