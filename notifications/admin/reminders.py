"""Reminders in the admin: edit one and it is rescheduled (a new version, the occurrence
that was due never fires); "Cancel" deactivates; deleting one leaves its job nothing to do."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction

from notifications import reminders
from notifications.models import Reminder


@admin.register(Reminder)
class ReminderAdmin(admin.ModelAdmin):
    list_display = ["id", "template", "user", "recipient", "at", "time_zone", "repeat",
                    "interval", "next_fire_at", "last_fired_at", "active", "version"]  # fmt: skip
    list_filter = ["active", "repeat", "time_zone"]
    search_fields = ["template", "recipient", "user__username"]
    raw_id_fields = ["user"]
    readonly_fields = ["next_fire_at", "last_fired_at", "version", "created_at", "updated_at"]
    actions = ["cancel"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        class CheckedForm(form):
            def _post_clean(self):
                super()._post_clean()
                for error in reminders.check(self.instance):
                    field = {"timeZone": "time_zone", "userId": "user"}.get(error["field"],
                                                                            error["field"])  # fmt: skip
                    target = field if field in self.fields else None
                    self.add_error(target, ValidationError(error["message"]))

        return CheckedForm

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            reminders.schedule(obj)

    @admin.action(description="Cancel the selected reminders")
    def cancel(self, request, queryset):
        count = 0
        for reminder in queryset.filter(active=True):
            reminder.active = False
            reminders.schedule(reminder)
            count += 1
        self.message_user(request, f"{count} reminder(s) cancelled.", messages.SUCCESS)
