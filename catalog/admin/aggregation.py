from django.contrib import admin

from catalog.models import DailyJobStat


@admin.register(DailyJobStat)
class DailyJobStatAdmin(admin.ModelAdmin):
    """Read-only: the rows are aggregate-daily's to write (trigger it to redo a day)."""

    list_display = ("day", "queue", "job_type", "processed", "failed", "retried",
                    "processing_p50_ms", "processing_p95_ms", "wait_p50_ms", "wait_p95_ms")  # fmt: skip
    list_filter = ("queue", "day")
    search_fields = ("job_type",)
    date_hierarchy = "day"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
