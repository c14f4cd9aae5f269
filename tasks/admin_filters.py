"""The job archive list's building blocks: a paginator that never counts the table,
filters with fixed choices, and the search box's forms, each served by an index.

Built to stay fast on millions of rows: no COUNT(*) of the table (EstimatedCountPaginator),
filters with fixed choices (no SELECT DISTINCT over the table), an index per filter that
ends in the list's order (tasks/models.py), and search forms an index answers.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Lookup, Q
from django.utils import timezone

from tasks.models import STATES, JobRecord
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

    #: Not a state: delayed jobs waiting out a retry back-off (an attempt failed before),
    #: as opposed to delayed by `delay` or the rate limit. Served by the (state, created)
    #: index, attempts_made checked on the rows it finds.
    RETRYING = "retrying"

    def lookups(self, request, model_admin):
        return [(s, s) for s in STATES] + [(self.RETRYING, "retrying (delayed for a retry)")]

    def queryset(self, request, queryset):
        if self.value() == self.RETRYING:
            return queryset.filter(state="delayed", attempts_made__gt=0)
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


class DateSetFilter(admin.SimpleListFilter):
    """Rows whose `field` (a date) is set ("yes") or not ("no"), under the given labels."""

    field = ""
    labels = ("not set", "set")

    def lookups(self, request, model_admin):
        return [("no", self.labels[0]), ("yes", self.labels[1])]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(**{f"{self.field}__isnull": self.value() == "no"})
        return queryset


class RemovedFilter(DateSetFilter):
    title, parameter_name = "in the registry", "removed"
    field, labels = "removed_at", ("Not removed", "Removed or cancelled")


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
