"""Reports, included by project/urls.py under api/v1/reports/ (the issue's paths: they
sit beside the platform's /api/v1/ resources rather than under /api/v1/catalog/)."""

from django.urls import path

from catalog.api import reports

urlpatterns = [
    path("<int:report_id>", reports.report_detail, name="catalog-report"),
    path("<int:report_id>/file", reports.report_file, name="catalog-report-file"),
]
