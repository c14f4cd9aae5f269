"""Import batches in the admin: upload a dataset (stored, then imported by `ingest-dataset`),
follow its status and counts, download its row errors as CSV."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from catalog.imports import service
from catalog.models import BatchStatistic, ImportBatch, Observation, OutboundEvent


class UploadForm(forms.ModelForm):
    format = forms.ChoiceField(
        choices=[("", "from the file name"), *ImportBatch.FORMATS], required=False
    )
    file = forms.FileField(help_text="CSV with a header line (designation, observed_at, "
                           "magnitude[, observer, method]) or JSON Lines, UTF-8")  # fmt: skip

    class Meta:
        model = ImportBatch
        fields = ["tenant_id", "dataset", "version_tag", "file", "format"]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.CATALOG_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {upload.size} bytes, over the {limit} bytes limit "
                "(CATALOG_MAX_UPLOAD_BYTES)."
            )
        return upload

    def clean(self):
        data = super().clean()
        names = [data.get(k) or "" for k in ("tenant_id", "dataset", "version_tag")]
        problems = service.check_names(*names)
        for model_field, api_field in (("tenant_id", "tenantId"), ("dataset", "dataset"),
                                       ("version_tag", "versionTag")):  # fmt: skip
            if api_field in problems and model_field not in self.errors:
                self.add_error(model_field, problems[api_field])
        return data


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "source", "rows_total", "rows_imported",
                    "rows_failed", "created_at", "errors_link"]  # fmt: skip
    list_filter = ["status", "source", "tenant_id"]
    search_fields = ["tenant_id", "dataset", "version_tag"]
    readonly_fields = ["tenant_id", "dataset", "version_tag", "source", "format", "url", "file",
                       "status", "job_id", "rows_total", "rows_imported", "rows_failed",
                       "resume_line", "failed_reason", "created_at", "started_at",
                       "finished_at", "errors_link"]  # fmt: skip

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = UploadForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant_id", "dataset", "version_tag", "file", "format"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return
        obj.format = service.format_of(obj.file.name, form.cleaned_data.get("format"))
        obj.source = obj.format
        obj.job_id = service.ingest_job_id(obj.tenant_id, obj.dataset, obj.version_tag)
        obj.file.name = f"{obj.tenant_id}-{obj.dataset}-{obj.version_tag}.{obj.format}"
        super().save_model(request, obj, form, change)
        # The admin's add view is one transaction: the job is sent once the batch commits.
        service.enqueue_import(obj)
        messages.info(request, f"Import job {obj.job_id} enqueued on the catalog queue.")

    @admin.display(description="row errors")
    def errors_link(self, obj):
        if obj is None or not obj.pk or not obj.rows_failed:
            return "-"
        url = reverse("admin:catalog_importbatch_errors", args=[obj.pk])
        return format_html('<a href="{}">{} errors (CSV)</a>', url, obj.rows_failed)

    def get_urls(self):
        view = self.admin_site.admin_view(self.errors_view)
        return [path("<int:batch_id>/errors.csv", view, name="catalog_importbatch_errors"),
                *super().get_urls()]  # fmt: skip

    def errors_view(self, request: HttpRequest, batch_id: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        batch = get_object_or_404(ImportBatch, pk=batch_id)
        response = StreamingHttpResponse(service.errors_csv(batch), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="import-{batch.pk}-errors.csv"'
        return response


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Observation)
class ObservationAdmin(ReadOnlyAdmin):
    list_display = ["designation", "observed_at", "magnitude", "observer", "batch"]
    list_filter = ["tenant_id"]
    search_fields = ["designation"]
    raw_id_fields = ["batch"]
    show_full_result_count = False  # millions of rows: no COUNT(*) per page


@admin.register(BatchStatistic)
class BatchStatisticAdmin(ReadOnlyAdmin):
    list_display = ["designation", "batch", "count", "mean_magnitude", "min_magnitude",
                    "max_magnitude", "first_observed_at", "last_observed_at"]  # fmt: skip
    search_fields = ["designation"]
    raw_id_fields = ["batch"]


@admin.register(OutboundEvent)
class OutboundEventAdmin(ReadOnlyAdmin):
    list_display = ["type", "tenant_id", "key", "created_at", "delivered_at"]
    list_filter = ["type", "delivered_at"]
