"""The job archive in the admin: list, filters, search, detail (with the job's log), and
retry/remove/cancel/promote.

The list's paginator, filters and search are in tasks/admin_filters.py; sorting is only by
the indexed creation time. Actions and the live state go through the platform (get_job,
Job.retry, tasks.control's remove_job and cancel_job), never to Redis; the rows are
written by tasks/archive.py alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from tasks import InvalidJobState, Job, get_job
from tasks.admin_filters import (
    CreatedFilter,
    EstimatedCountPaginator,
    JobTypeFilter,
    QueueFilter,
    RemovedFilter,
    StateFilter,
    search_filter,
)
from tasks.archive import record_from_job
from tasks.control import cancel_job, remove_job
from tasks.errors import UnknownQueue
from tasks.flows import flow_of
from tasks.models import ArchiveError, ArchiveGap, JobAttempt, JobRecord

# --- the job admin ------------------------------------------------------------------------


def _pretty(value: Any) -> str:
    if value in (None, "", [], {}):
        return "—"
    return format_html('<pre class="jy-json">{}</pre>', json.dumps(value, indent=2))


class JobAttemptInline(admin.TabularInline):
    model = JobAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "outcome",
        "started_at",
        "finished_at",
        "duration",
        "worker",
        "failed_reason",
    )
    readonly_fields = fields
    ordering = ("number",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="duration")
    def duration(self, attempt: JobAttempt) -> str:
        ms = attempt.duration_ms
        return "—" if ms is None else f"{ms} ms"


#: What the job page's buttons and the list's actions do to a job.
ACTIONS = ("retry", "remove", "cancel", "promote")
#: The newest log lines the job page shows (the API pages through all of them).
LOG_LINES_SHOWN = 200


def operate(record: JobRecord, action: str) -> tuple[int, str]:
    """Retry, remove, cancel or promote the job behind an archive row; (level, message)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    gone = messages.WARNING, f"{record.job_id}: not in the registry any more; nothing to {action}"
    try:
        if action == "cancel":
            cancelled = cancel_job(record.queue, record.job_id)
            if cancelled is None:
                return gone
            if cancelled.state == "active":
                grace = settings.JOBYARD["CANCEL_GRACE_MS"] / 1000
                return messages.SUCCESS, (
                    f"{record.job_id}: running; asked to stop (its process is killed after "
                    f"{grace:g} s), it will fail as cancelled"
                )
            return messages.SUCCESS, f"{record.job_id}: cancelled before it ran"
        live = get_job(record.queue, record.job_id)
        if live is None:
            return gone
        if action == "retry":
            live.retry()
            return messages.SUCCESS, f"{record.job_id}: sent again with a fresh attempt budget"
        if action == "promote":
            live.promote()
            return messages.SUCCESS, f"{record.job_id}: promoted, it runs now"
        remove_job(live)
        return (
            messages.SUCCESS,
            f"{record.job_id}: removed from the registry (the archive keeps it)",
        )
    except UnknownQueue:  # a queue no longer configured
        return gone
    except InvalidJobState as exc:  # not in a state the action applies to, or changed meanwhile
        return messages.ERROR, f"{record.job_id}: {exc}"


@admin.register(JobRecord)
class JobRecordAdmin(admin.ModelAdmin):
    list_display = (
        "job_id",
        "name",
        "queue",
        "state_badge",
        "created_at",
        "took",
        "attempts_made",
        "worker",
    )
    list_display_links = ("job_id",)
    list_filter = (QueueFilter, StateFilter, JobTypeFilter, CreatedFilter, RemovedFilter)
    search_fields = ("job_id",)  # shows the box; get_search_results does the searching
    search_help_text = 'Job id (or its start), a data value, key=value, or {"json": "object"}'
    sortable_by = ("created_at",)
    ordering = ("-created_at", "-id")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    inlines = (JobAttemptInline,)
    actions = ("retry_jobs", "remove_jobs", "cancel_jobs", "promote_jobs")
    fieldsets = (
        (None, {"fields": ("queue", "job_id", "name", "state_badge", "worker", "attempts_made",
                           "progress_display", "created_at", "processed_on", "finished_on",
                           "removed_at", "updated_at")}),
        ("Data", {"fields": ("data_display", "opts_display")}),
        ("Result", {"fields": ("result_display",)}),
        ("Error", {"fields": ("failed_reason", "stacktrace_display")}),
    )  # fmt: skip

    # Rows are written by tasks/archive.py only; the admin reads them and acts on jobs.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("tasks.change_jobrecord")

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        return queryset.filter(search_filter(search_term)), False

    def get_object(self, request, object_id, from_field=None):
        """`queue:job_id` works as well as a row id; an unarchived live job shows unsaved."""
        key = unquote(object_id)
        if ":" not in key:
            return super().get_object(request, object_id, from_field)
        queue, job_id = key.split(":", 1)
        row = JobRecord.objects.filter(queue=queue, job_id=job_id).first()
        if row is not None:
            return row
        try:
            live = get_job(queue, job_id)
        except UnknownQueue:
            return None
        if live is None:
            return None
        return record_from_job(live)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        record = self.get_object(request, object_id)
        live = None
        if record is not None:
            try:
                live = get_job(record.queue, record.job_id)
            except UnknownQueue:
                live = None
        lines, count = live.tail_logs(LOG_LINES_SHOWN) if live else ([], 0)
        extra = {
            "live": live,
            "flow": self._flow(live),
            "live_logs": lines,
            "live_logs_count": count,
            "live_returnvalue": json.dumps(live.returnvalue, indent=2) if live else "",
            "live_due": datetime.fromtimestamp(live.delay_until / 1000, tz=UTC)
            if live and live.delay_until
            else None,
            "archived": record is not None and record.pk is not None,
            "can_operate": self.has_operate_permission(request),
            "operate_url": reverse(
                "admin:tasks_jobrecord_operate", args=[quote(f"{record.queue}:{record.job_id}")]
            )
            if record
            else "",
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    @staticmethod
    def _flow(live: Job | None) -> dict[str, Any] | None:
        """The job's place in a flow, each job linked to its page; None outside a flow."""
        if live is None:
            return None
        flow = flow_of(live)
        if not flow["parent"] and not flow["children"]:
            return None

        def linked(entry: dict[str, Any]) -> dict[str, Any]:
            key = quote(f"{entry['queue']}:{entry['id']}")
            return {**entry, "url": reverse("admin:tasks_jobrecord_change", args=[key])}

        return {
            "parent": linked(flow["parent"]) if flow["parent"] else None,
            "children": [linked(child) for child in flow["children"]],
        }

    def get_urls(self):
        return [
            path(
                "<path:object_id>/operate/",
                self.admin_site.admin_view(self.operate_view),
                name="tasks_jobrecord_operate",
            ),
            *super().get_urls(),
        ]

    def operate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The detail page's retry/remove/cancel buttons (POST only)."""
        if request.method != "POST" or not self.has_operate_permission(request):
            return HttpResponse(status=405 if request.method != "POST" else 403)
        record = self.get_object(request, object_id)
        if record is None:
            raise Http404("no such job")
        action = request.POST.get("action", "")
        if action not in ACTIONS:
            return HttpResponse("unknown action", status=400)
        level, message = operate(record, action)
        self.message_user(request, message, level)
        return HttpResponseRedirect(
            reverse("admin:tasks_jobrecord_change", args=[quote(f"{record.queue}:{record.job_id}")])
        )

    def _run(self, request, queryset: QuerySet, action: str) -> None:
        for record in queryset[:1000]:
            level, message = operate(record, action)
            self.message_user(request, message, level)

    @admin.action(description="Retry selected failed jobs", permissions=["operate"])
    def retry_jobs(self, request, queryset):
        self._run(request, queryset, "retry")

    @admin.action(description="Remove selected jobs from the registry", permissions=["operate"])
    def remove_jobs(self, request, queryset):
        self._run(request, queryset, "remove")

    @admin.action(description="Cancel selected jobs (running ones are stopped)",
                  permissions=["operate"])  # fmt: skip
    def cancel_jobs(self, request, queryset):
        self._run(request, queryset, "cancel")

    @admin.action(
        description="Promote selected delayed jobs: run them now", permissions=["operate"]
    )
    def promote_jobs(self, request, queryset):
        self._run(request, queryset, "promote")

    @admin.display(description="state", ordering="state")
    def state_badge(self, record: JobRecord) -> str:
        removed = " (removed)" if record.removed_at and record.state != "cancelled" else ""
        return format_html(
            '<span class="jy-state jy-{}">{}</span>{}', record.state, record.state, removed
        )

    @admin.display(description="took")
    def took(self, record: JobRecord) -> str:
        if record.processed_on and record.finished_on:
            ms = (record.finished_on - record.processed_on).total_seconds() * 1000
            return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"
        return "—"

    @admin.display(description="progress")
    def progress_display(self, record):
        return _pretty(record.progress) if isinstance(record.progress, dict) else record.progress

    @admin.display(description="data")
    def data_display(self, record):
        return _pretty(record.data)

    @admin.display(description="options")
    def opts_display(self, record):
        return _pretty(record.opts)

    @admin.display(description="result")
    def result_display(self, record):
        return _pretty(record.returnvalue)

    @admin.display(description="stack traces (last attempts)")
    def stacktrace_display(self, record):
        if not record.stacktrace:
            return "—"
        return format_html(
            "".join('<pre class="jy-trace">{}</pre>' for _ in record.stacktrace), *record.stacktrace
        )


# --- the recorder's faults ----------------------------------------------------------------


class _RecorderFaultAdmin(admin.ModelAdmin):
    """Written by the recorder (tasks/archive.py) only: read here, and deleted once dealt
    with (the dashboard counts what is left)."""

    list_per_page = 100
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ArchiveError)
class ArchiveErrorAdmin(_RecorderFaultAdmin):
    list_display = ("created_at", "queue", "job_link", "stream_id", "error")
    list_filter = (QueueFilter,)
    search_fields = ("job_id", "stream_id")
    fields = ("created_at", "queue", "job_link", "stream_id", "error", "event_display")
    readonly_fields = fields

    @admin.display(description="job id")
    def job_link(self, error: ArchiveError) -> str:
        if not error.job_id:
            return "—"
        url = reverse("admin:tasks_jobrecord_change", args=[quote(f"{error.queue}:{error.job_id}")])
        return format_html('<a href="{}">{}</a>', url, error.job_id)

    @admin.display(description="event")
    def event_display(self, error: ArchiveError) -> str:
        return _pretty(error.event)


@admin.register(ArchiveGap)
class ArchiveGapAdmin(_RecorderFaultAdmin):
    list_display = (
        "detected_at", "queue", "events_lost", "jobs_recovered", "jobs_unrecoverable",
        "after_id", "before_id",
    )  # fmt: skip
    list_filter = (QueueFilter,)
    readonly_fields = list_display


# Schedules: django-celery-beat's admin with next runs is in tasks/scheduling/admin.py.
