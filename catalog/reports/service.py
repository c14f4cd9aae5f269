"""Make a report: its row, its file (a temporary file, then Django's storage), its event.

`generate` is what `generate-report` runs. The row is keyed by the job id, so a second run
of the same job (a retry, a redelivery) rewrites the same row and replaces its file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.cleanup import BATCH_SIZE, cleanup_kind
from catalog.models import OutboundEvent, Report
from catalog.reports import types, writers

#: The outbox event written when a report is ready (the notifications app is to deliver it).
READY_EVENT = "report.ready"


class ReportError(ValueError):
    """A report that cannot be made, whatever the retries (no such user, say)."""


def file_url(report: Report) -> str:
    return f"/api/v1/reports/{report.pk}/file"


def generate(job_id: str, report_type: str, fmt: str, params: dict[str, Any],
             user_id: int | None, progress: Callable[[Any], None] = lambda p: None) -> dict:  # fmt: skip
    """Write the report to storage; {reportId, rows, size, file, truncated}."""
    kind = types.REPORT_TYPES[report_type]
    parsed = types.parse_params(report_type, params)
    if user_id is not None and not get_user_model().objects.filter(pk=user_id).exists():
        raise ReportError(f"userId: no user {user_id}")
    report, _ = Report.objects.update_or_create(job_id=job_id, defaults={
        "report_type": report_type, "format": fmt, "params": params, "user_id": user_id,
        "status": Report.RUNNING, "failed_reason": "", "finished_at": None})  # fmt: skip
    try:
        return _write(report, kind, parsed, progress)
    except Exception as exc:
        Report.objects.filter(pk=report.pk).update(
            status=Report.FAILED, failed_reason=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now())  # fmt: skip
        raise


def _write(report: Report, kind: types.ReportType, parsed: types.Params,
           progress: Callable[[Any], None]) -> dict:  # fmt: skip
    total = kind.count(parsed)

    def on_rows(written: int) -> None:
        if total:
            progress(min(99, written * 100 // total))
        else:
            progress({"rows": written})

    columns = types.columns(kind, parsed)
    rows = kind.rows(parsed)
    truncated = False
    # The rows go to a temporary file first (never the whole report in memory), then to
    # storage in one save: a half-written report is never seen there.
    with tempfile.TemporaryDirectory(prefix="jobyard-report-") as tmp:
        path = os.path.join(tmp, f"report.{report.format}")
        if report.format == Report.CSV:
            written = writers.write_csv(path, columns, rows, on_rows)
        else:
            subtitle = f"{parsed.model_dump_json(by_alias=True, exclude_none=True)} · " \
                       f"{timezone.now():%Y-%m-%d %H:%M} UTC · report {report.pk}"  # fmt: skip
            written, truncated = writers.write_pdf(path, kind.title, subtitle, columns, rows,
                                                   on_rows, settings.CATALOG_REPORT_PDF_MAX_ROWS)  # fmt: skip
        size = os.path.getsize(path)
        old = report.file.name
        with open(path, "rb") as fh:
            report.file.save(f"{kind.name}-{report.pk}.{report.format}", File(fh), save=False)
    with transaction.atomic():
        report.status, report.rows, report.size = Report.COMPLETED, written, size
        report.finished_at = timezone.now()
        report.save(update_fields=["status", "rows", "size", "file", "finished_at"])
        _ready_event(report)
    if old and old != report.file.name:
        report.file.storage.delete(old)  # a rerun's file replaced the first run's
    progress(100)
    return {"reportId": report.pk, "rows": written, "size": size, "file": file_url(report),
            "truncated": truncated}  # fmt: skip


def _ready_event(report: Report) -> None:
    """The outbox row telling the requester the report is ready (once per report)."""
    OutboundEvent.objects.get_or_create(key=f"{READY_EVENT}:{report.pk}", defaults={
        "type": READY_EVENT, "tenant_id": "",
        "payload": {"reportId": report.pk, "userId": report.user_id,
                    "reportType": report.report_type, "format": report.format,
                    "rows": report.rows, "size": report.size, "url": file_url(report),
                    "finishedAt": report.finished_at.isoformat()}})  # fmt: skip


@cleanup_kind("reports")
def old_reports(cutoff: datetime) -> int:
    """Reports made before `cutoff`: their files, then their rows."""
    return delete_reports(Report.objects.filter(created_at__lt=cutoff))


def delete_reports(queryset: QuerySet, batch_size: int = BATCH_SIZE) -> int:
    """Delete reports and their files, `batch_size` at a time; the rows deleted. A file
    goes before its row: a crash between the two leaves a row whose file is gone (its
    download answers 404), never a file no row names."""
    deleted = 0
    while True:
        batch = list(queryset.order_by("pk").values_list("pk", "file")[:batch_size])
        if not batch:
            return deleted
        for _, name in batch:
            if name:
                default_storage.delete(name)
        deleted += Report.objects.filter(pk__in=[pk for pk, _ in batch]).delete()[0]
