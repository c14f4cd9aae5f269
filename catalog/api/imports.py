"""Imports over HTTP: POST /api/v1/catalog/imports, GET .../{batchId}, GET .../errors.csv.

Authentication, scopes and JSON errors are the platform's (`api_view`, docs/api.md).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from catalog.imports import service
from catalog.models import ImportBatch
from tasks import API_READ, API_WRITE, ApiError, api_view, read_json


def batch_json(batch: ImportBatch) -> dict[str, Any]:
    def ms(moment):
        return int(moment.timestamp() * 1000) if moment else None

    return {
        "batchId": batch.pk, "jobId": batch.job_id, "tenantId": batch.tenant_id,
        "dataset": batch.dataset, "versionTag": batch.version_tag, "source": batch.source,
        "format": batch.format, "status": batch.status, "rowsTotal": batch.rows_total,
        "rowsImported": batch.rows_imported, "rowsFailed": batch.rows_failed,
        "failedReason": batch.failed_reason or None, "createdAt": ms(batch.created_at),
        "startedAt": ms(batch.started_at), "finishedAt": ms(batch.finished_at),
    }  # fmt: skip


def _invalid(problems: dict[str, str]) -> ApiError:
    fields = [{"field": f, "message": m} for f, m in problems.items()]
    detail = "; ".join(f"{f}: {m}" for f, m in problems.items())
    return ApiError(422, "invalid_request", detail, fields=fields)


@transaction.non_atomic_requests
@api_view({"POST": API_WRITE})
def imports(request: HttpRequest) -> HttpResponse:
    """A multipart upload (`file`, `tenantId`, `dataset`, `versionTag`, optional `format`)
    or a JSON body with `url` instead of a file: 202 {jobId, batchId} for a new batch, 200
    with created false for a (tenant, dataset, version) that exists (nothing is stored)."""
    limit = settings.CATALOG_MAX_UPLOAD_BYTES
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > limit:  # refused before a byte of the body is read
        raise ApiError(413, "upload_too_large", f"the upload is over {limit} bytes")
    if (request.content_type or "").startswith("multipart/form-data"):
        fields: dict[str, Any] = request.POST.dict()
        upload = request.FILES.get("file")
        if upload is None:
            raise _invalid({"file": "required: the dataset (CSV or JSON)"})
        if upload.size > limit:
            raise ApiError(413, "upload_too_large", f"the upload is over {limit} bytes")
        url = ""
    else:
        fields = read_json(request)
        upload = None
        url = fields.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _invalid({"url": "required without a file: an http(s) URL"})
    tenant_id, dataset = fields.get("tenantId"), fields.get("dataset", "observations")
    version_tag, fmt = fields.get("versionTag"), fields.get("format") or None
    problems = service.check_names(tenant_id, dataset, version_tag)
    if fmt not in (None, ImportBatch.CSV, ImportBatch.JSON):
        problems["format"] = "must be csv or json"
    unknown = set(fields) - {"tenantId", "dataset", "versionTag", "format", "url"}
    for name in sorted(unknown):
        problems[name] = "unknown field"
    if problems:
        raise _invalid(problems)
    batch, job, created = service.start_import(tenant_id=tenant_id, dataset=dataset,
                                               version_tag=version_tag, upload=upload,
                                               url=url, fmt=fmt)  # fmt: skip
    body = {"jobId": batch.job_id, "batchId": batch.pk, "status": batch.status,
            "created": created}  # fmt: skip
    return JsonResponse(body, status=202 if created else 200)


def _batch(batch_id: int) -> ImportBatch:
    batch = ImportBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        raise ApiError(404, "batch_not_found", f"no import batch {batch_id}")
    return batch


@api_view({"GET": API_READ})
def batch_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    return JsonResponse(batch_json(_batch(batch_id)))


@api_view({"GET": API_READ})
def batch_errors(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = _batch(batch_id)
    response = StreamingHttpResponse(service.errors_csv(batch), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="import-{batch.pk}-errors.csv"'
    return response
