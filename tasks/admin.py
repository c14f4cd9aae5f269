"""The job archive in the admin: list, filters, search, detail, and retry/remove/cancel.

Built to stay fast on millions of rows: no COUNT(*) of the table (EstimatedCountPaginator),
filters with fixed choices (no SELECT DISTINCT over the table), an index per filter that
ends in the list's order, and sorting only by the indexed creation time. Actions and the
live state go through the platform (get_job, Job.retry, tasks.control's remove_job and
cancel_job), never to Redis; the rows are written by tasks/archive.py alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Lookup, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from tasks import InvalidJobState, get_job
from tasks.archive import record_from_job
from tasks.control import cancel_job, remove_job
from tasks.errors import UnknownQueue
from tasks.models import STATES, JobAttempt, JobRecord
from tasks.registry import job_types

# --- a paginator that does not count a million rows --------------------------------------


class EstimatedCountPaginator(Paginator):
    """Exact counts up to EXACT_LIMIT rows; past that, PostgreSQL's own estimate.

    Counting is a bounded query (`COUNT(*) FROM (... LIMIT EXACT_LIMIT + 1)`), so its cost
    does not grow with the table; a larger result is counted by the planner's row estimate
    (EXPLAIN), shown as "about N". A page past the real end is empty, not an error.
    """

    EXACT_LIMIT = 10_000

    @cached_property
    def count(self) -> int:
        exact = self.object_list.order_by()[: self.EXACT_LIMIT + 1].count()
        self.estimated = exact > self.EXACT_LIMIT
        if not self.estimated:
            return exact
        return max(self._planner_estimate(), exact)

    estimated = False

    def _planner_estimate(self) -> int:
        sql, params = self.object_list.order_by().values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])


# --- filters: fixed choices, no DISTINCT over the table ----------------------------------


class QueueFilter(admin.SimpleListFilter):
    title, parameter_name = "queue", "queue"

    def lookups(self, request, model_admin):
        return [(q, q) for q in settings.JOBYARD_QUEUES]

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


class StateFilter(admin.SimpleListFilter):
    title, parameter_name = "state", "state"

    def lookups(self, request, model_admin):
        return [(s, s) for s in STATES]

    def queryset(self, request, queryset):
        return queryset.filter(state=self.value()) if self.value() else queryset


class JobTypeFilter(admin.SimpleListFilter):
    """The declared job types (the registry), not a DISTINCT over the archive."""

    title, parameter_name = "job type", "name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in job_types()]

    def queryset(self, request, queryset):
        return queryset.filter(name=self.value()) if self.value() else queryset


class CreatedFilter(admin.SimpleListFilter):
    title, parameter_name = "created", "created"
    RANGES = {
        "1h": ("Past hour", timedelta(hours=1)),
        "24h": ("Past 24 hours", timedelta(days=1)),
        "7d": ("Past 7 days", timedelta(days=7)),
        "30d": ("Past 30 days", timedelta(days=30)),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.RANGES.items()] + [
            ("older", "Older than 30 days")
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value in self.RANGES:
            return queryset.filter(created_at__gte=timezone.now() - self.RANGES[value][1])
        if value == "older":
            return queryset.filter(created_at__lt=timezone.now() - timedelta(days=30))
        return queryset


class RemovedFilter(admin.SimpleListFilter):
    title, parameter_name = "in the registry", "removed"

    def lookups(self, request, model_admin):
        return [("no", "Not removed"), ("yes", "Removed or cancelled")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(removed_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(removed_at__isnull=True)
        return queryset


# --- search: by id (prefix) and by data ---------------------------------------------------


def search_filter(term: str) -> Q:
    """What the search box finds, each form served by an index:

    - `{"to": "a@b.c"}`: jobs whose data contains that JSON (GIN, @>);
    - `key=value` (`user.id=42` for nested keys): data containing it; the value is read as
      JSON when it parses (42, true, "42"), else as a string;
    - anything else: a job id starting with it, or a top-level data value equal to it.
    """
    term = term.strip()
    if term.startswith("{"):
        try:
            wanted = json.loads(term)
        except json.JSONDecodeError:
            wanted = None
        if isinstance(wanted, dict):
            return Q(data__contains=wanted)
    key, sep, raw = term.partition("=")
    if sep and key and " " not in key:
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        for part in reversed(key.split(".")):
            value = {part: value}
        return Q(data__contains=value)
    return Q(job_id__startswith=term) | Q(data__has_top_level_value=term)


class HasTopLevelValue(Lookup):
    """`data @? '$.* ? (@ == "value")'`: any top-level value equals the string (GIN)."""

    lookup_name = "has_top_level_value"

    def as_sql(self, compiler, conn):
        lhs, lhs_params = self.process_lhs(compiler, conn)
        path = f"$.* ? (@ == {json.dumps(str(self.rhs))})"
        return f"{lhs} @? %s::jsonpath", [*lhs_params, path]


JobRecord._meta.get_field("data").register_lookup(HasTopLevelValue)


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


def operate(record: JobRecord, action: str) -> tuple[int, str]:
    """Retry, remove or cancel the job behind an archive row; (message level, message)."""
    if action not in ("retry", "remove", "cancel"):
        raise ValueError(f"unknown action {action!r}")
    gone = messages.WARNING, f"{record.job_id}: not in the registry any more; nothing to {action}"
    try:
        if action == "cancel":
            if cancel_job(record.queue, record.job_id) is None:
                return gone
            return messages.SUCCESS, f"{record.job_id}: cancelled before it ran"
        live = get_job(record.queue, record.job_id)
        if live is None:
            return gone
        if action == "retry":
            live.retry()
            return messages.SUCCESS, f"{record.job_id}: sent again with a fresh attempt budget"
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
    actions = ("retry_jobs", "remove_jobs", "cancel_jobs")
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
        extra = {
            "live": live,
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
        if action not in ("retry", "remove", "cancel"):
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

    @admin.action(description="Cancel selected waiting or delayed jobs", permissions=["operate"])
    def cancel_jobs(self, request, queryset):
        self._run(request, queryset, "cancel")

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


# Schedules: django-celery-beat's admin with next runs is in tasks/scheduling/admin.py.
