"""Reports over HTTP: GET /api/v1/reports/{id} (metadata) and GET .../{id}/file.

Authentication, scopes and JSON errors are the platform's (`api_view`, docs/api.md); a read
token is enough. Who may see a report: its owner (a token whose owner it is, docs/api.md
"Tokens"), and staff (a staff session, or a token owned by a staff user). Anyone else,
a token without an owner included, gets 404, as for a report that does not exist: ids
are not confirmed to strangers.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse

from catalog.models import Report
from catalog.reports.service import file_url
from tasks import API_READ, ApiError, api_view


def report_json(report: Report) -> dict[str, Any]:
    def ms(moment):
        return int(moment.timestamp() * 1000) if moment else None

    done = report.status == Report.COMPLETED and bool(report.file.name)
    return {
        "id": report.pk, "reportType": report.report_type, "format": report.format,
        "params": report.params, "userId": report.user_id, "status": report.status,
        "rows": report.rows, "size": report.size, "jobId": report.job_id,
        "failedReason": report.failed_reason or None, "createdAt": ms(report.created_at),
        "finishedAt": ms(report.finished_at), "file": file_url(report) if done else None,
    }  # fmt: skip


def visible_reports(request: HttpRequest):
    """The reports the caller may see: all for staff, their own for a token's owner."""
    principal = request.api_principal
    user = principal.user
    if principal.token is not None:
        owner_id = principal.token.user_id
        user = get_user_model().objects.filter(pk=owner_id, is_active=True).first()
        if user is None:
            return Report.objects.none()  # a service's token, or its owner is gone
    if user.is_staff:
        return Report.objects.all()
    return Report.objects.filter(user=user)


def _report(request: HttpRequest, report_id: int) -> Report:
    report = visible_reports(request).filter(pk=report_id).first()
    if report is None:
        raise ApiError(404, "report_not_found", f"no report {report_id}")
    return report


@api_view({"GET": API_READ})
def report_detail(request: HttpRequest, report_id: int) -> HttpResponse:
    return JsonResponse(report_json(_report(request, report_id)))


@api_view({"GET": API_READ})
def report_file(request: HttpRequest, report_id: int) -> HttpResponse:
    report = _report(request, report_id)
    if report.status != Report.COMPLETED or not report.file.name:
        raise ApiError(409, "report_not_ready", f"report {report_id} is {report.status}")
    try:
        handle = report.file.open("rb")  # streamed from storage, a block at a time
    except FileNotFoundError:
        raise ApiError(404, "report_file_gone", f"report {report_id}'s file is gone") from None
    content_type = "text/csv" if report.format == Report.CSV else "application/pdf"
    return FileResponse(handle, as_attachment=True, content_type=content_type,
                        filename=f"{report.report_type}-{report.pk}.{report.format}")  # fmt: skip
