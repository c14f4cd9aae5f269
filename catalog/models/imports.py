"""Imports: uploaded datasets (ImportBatch), their rows (Observation) and row errors, the
per-batch statistics the calculation derives, and the outbox of events for webhooks.

Comets are referenced by designation string, not by a foreign key: an import lands
observations whatever the comet table holds (docs/imports.md).
"""

from __future__ import annotations

from django.db import models

__all__ = ["BatchStatistic", "ImportBatch", "ImportRowError", "Observation", "OutboundEvent"]


class ImportBatch(models.Model):
    """One uploaded (or downloaded) dataset version of a tenant, and how its import went."""

    CSV, JSON, URL = "csv", "json", "url"
    SOURCES = [(CSV, "CSV upload"), (JSON, "JSON upload"), (URL, "URL")]
    FORMATS = [(CSV, "CSV"), (JSON, "JSON Lines or a JSON array")]
    PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"
    #: Every row is written; the calculation (a flow: docs/imports.md) is under way. An
    #: import is `completed` once its statistics and its outbox event are written too.
    CALCULATING = "calculating"
    STATUSES = [(s, s) for s in (PENDING, RUNNING, CALCULATING, COMPLETED, FAILED)]
    #: Every row written: the import is not read again.
    IMPORTED = (CALCULATING, COMPLETED)

    tenant_id = models.CharField(max_length=40)
    dataset = models.CharField(max_length=40)
    version_tag = models.CharField(max_length=40)
    source = models.CharField(max_length=4, choices=SOURCES)
    format = models.CharField(max_length=4, choices=FORMATS, default=CSV)
    url = models.URLField(max_length=2000, blank=True)
    file = models.FileField(upload_to="catalog/imports/%Y/%m/", blank=True, max_length=300)
    status = models.CharField(max_length=11, choices=STATUSES, default=PENDING)
    job_id = models.CharField(max_length=128, blank=True)
    #: Records read (good and bad), imported, and refused, as committed chunk by chunk.
    rows_total = models.PositiveBigIntegerField(default=0)
    rows_imported = models.PositiveBigIntegerField(default=0)
    rows_failed = models.PositiveBigIntegerField(default=0)
    #: The last line of the last committed chunk: a rerun resumes after it.
    resume_line = models.PositiveBigIntegerField(default=0)
    failed_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "import batches"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "dataset", "version_tag"], name="catalog_import_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.dataset}@{self.version_tag}"


class ImportRowError(models.Model):
    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="row_errors")
    line = models.PositiveBigIntegerField()
    field = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=500)

    class Meta:
        ordering = ["batch", "line", "id"]
        indexes = [models.Index(fields=["batch", "line"], name="catalog_rowerr_batch_line")]

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


class Observation(models.Model):
    """One brightness observation of a comet, as imported (magnitudes are apparent)."""

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="observations")
    tenant_id = models.CharField(max_length=40)
    line = models.PositiveBigIntegerField(help_text="the line of the source file")
    designation = models.CharField(max_length=64)
    observed_at = models.DateTimeField()
    magnitude = models.FloatField()
    observer = models.CharField(max_length=100, blank=True)
    method = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "line"], name="catalog_observation_line")
        ]
        indexes = [
            models.Index(fields=["batch", "designation"], name="catalog_obs_batch_desig"),
            models.Index(fields=["tenant_id", "designation"], name="catalog_obs_tenant_desig"),
        ]

    def __str__(self) -> str:
        return f"{self.designation} {self.magnitude} at {self.observed_at:%Y-%m-%d %H:%M}"


class BatchStatistic(models.Model):
    """Per designation, what `calculate-batch` derived from one batch's observations."""

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="statistics")
    tenant_id = models.CharField(max_length=40)
    designation = models.CharField(max_length=64)
    count = models.PositiveIntegerField()
    mean_magnitude = models.FloatField()
    min_magnitude = models.FloatField()
    max_magnitude = models.FloatField()
    first_observed_at = models.DateTimeField()
    last_observed_at = models.DateTimeField()

    class Meta:
        ordering = ["batch", "designation"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "designation"], name="catalog_stat_desig")
        ]

    def __str__(self) -> str:
        return f"{self.designation}: {self.count} observations"


class OutboundEvent(models.Model):
    """The outbox: events for webhooks, written in the transaction that makes them true.

    The notifications app delivers them (and sets `delivered_at`); `key` makes writing one
    twice a no-op, so a calculation run again emits its event once.
    """

    type = models.CharField(max_length=64)
    tenant_id = models.CharField(max_length=40)
    key = models.CharField(max_length=200, unique=True)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["delivered_at", "created_at"], name="catalog_outbox_pending")
        ]

    def __str__(self) -> str:
        return f"{self.type} ({self.key})"
