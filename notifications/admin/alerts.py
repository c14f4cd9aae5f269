"""Alerts in the admin: open ones first, read-only (the checks write them)."""

from django.contrib import admin

from notifications.models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["rule", "subject", "is_open", "started_at", "resolved_at", "peak_value",
                    "last_value", "threshold"]  # fmt: skip
    list_filter = ["rule", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["subject", "message"]
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in Alert._meta.fields]

    @admin.display(boolean=True, description="open")
    def is_open(self, alert: Alert) -> bool:
        return alert.is_open

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
