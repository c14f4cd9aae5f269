"""Reports in the admin: each one's status, counts and a download link (the file is served
from storage by an admin view, so it needs a staff login, never a public media URL).
Reports are requested with the trigger form (generate-report), the API or the CLI."""

from __future__ import annotations

from django.contrib import admin
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from catalog.models import Report


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "user", "rows", "size", "created_at", "finished_at",
                    "download_link"]  # fmt: skip
    list_filter = ["status", "report_type", "format"]
    search_fields = ["job_id", "user__username"]
    readonly_fields = ["report_type", "format", "params", "user", "status", "file", "rows",
                       "size", "job_id", "failed_reason", "created_at", "finished_at",
                       "download_link"]  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="download")
    def download_link(self, obj):
        if obj is None or not obj.pk or obj.status != Report.COMPLETED or not obj.file.name:
            return "-"
        url = reverse("admin:catalog_report_download", args=[obj.pk])
        return format_html('<a href="{}">{} ({} rows)</a>', url, obj.format.upper(), obj.rows)

    def get_urls(self):
        view = self.admin_site.admin_view(self.download_view)
        return [path("<int:report_id>/download", view, name="catalog_report_download"),
                *super().get_urls()]  # fmt: skip

    def download_view(self, request: HttpRequest, report_id: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        report = get_object_or_404(Report, pk=report_id, status=Report.COMPLETED)
        try:
            handle = report.file.open("rb")
        except (FileNotFoundError, ValueError):
            raise Http404("the report's file is gone") from None
        content_type = "text/csv" if report.format == Report.CSV else "application/pdf"
        return FileResponse(handle, as_attachment=True, content_type=content_type,
                            filename=f"{report.report_type}-{report.pk}.{report.format}")  # fmt: skip
