"""Reports: one row per requested CSV or PDF report, its file kept in Django's storage."""

from __future__ import annotations

from django.conf import settings
from django.db import models

__all__ = ["Report"]


class Report(models.Model):
    """A report a user asked for (`generate-report`), and how making it went.

    The row is made (or found, by job id) when the job starts, so a rerun of the same job
    writes the same row and replaces its file: safe to run twice.
    """

    CSV, PDF = "csv", "pdf"
    FORMATS = [(CSV, "CSV"), (PDF, "PDF")]
    PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"
    STATUSES = [(s, s) for s in (PENDING, RUNNING, COMPLETED, FAILED)]

    report_type = models.CharField("type", max_length=40)
    format = models.CharField(max_length=3, choices=FORMATS)
    params = models.JSONField(default=dict, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="reports")  # fmt: skip
    status = models.CharField(max_length=9, choices=STATUSES, default=PENDING)
    file = models.FileField(upload_to="catalog/reports/%Y/%m/", blank=True, max_length=300)
    rows = models.PositiveBigIntegerField(default=0)
    size = models.PositiveBigIntegerField("size (bytes)", default=0)
    job_id = models.CharField(max_length=128, unique=True)
    failed_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="catalog_report_user")]

    def __str__(self) -> str:
        return f"{self.report_type} ({self.format}) #{self.pk}"
