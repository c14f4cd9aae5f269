"""Dead-job digests in the admin: read-only (the webhook_events loop writes and sends them),
newest first; the "sent at: empty" filter shows the ones not sent (yet)."""

from django.contrib import admin

from notifications.models import DeadJobDigest


@admin.register(DeadJobDigest)
class DeadJobDigestAdmin(admin.ModelAdmin):
    list_display = ["window_start", "queue", "job_name", "count", "is_sent", "sent_at"]
    list_filter = ["queue", ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["job_name", "failed_reason", "job_ids"]
    date_hierarchy = "window_start"
    ordering = ["-window_start"]
    readonly_fields = [f.name for f in DeadJobDigest._meta.fields]

    @admin.display(boolean=True, description="sent", ordering="sent_at")
    def is_sent(self, digest: DeadJobDigest) -> bool:
        return digest.sent_at is not None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
