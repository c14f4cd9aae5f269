"""Messages and inbox items in the admin. Messages are records of what was sent: read-only
(send one with the trigger form's `send-email`, or `notify()`)."""

from __future__ import annotations

from django.contrib import admin

from notifications.models import InboxItem, Message


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "channel", "recipient", "subject", "state", "attempts", "created_at",
                    "sent_at"]  # fmt: skip
    list_filter = ["state", "channel", "template"]
    search_fields = ["recipient", "subject", "provider_id", "job_id"]
    readonly_fields = ["channel", "recipient", "user", "template", "context", "subject", "body",
                       "html", "attachments", "state", "provider_id", "attempts", "last_error",
                       "job_id", "send_after", "created_at", "updated_at", "sent_at",
                       "handed_over_at"]  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(InboxItem)
class InboxItemAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "title", "read_at", "created"]
    list_filter = ["read_at"]
    search_fields = ["user__username", "title"]
    raw_id_fields = ["user", "message"]
    readonly_fields = ["created"]
