"""Webhooks in the admin: endpoints (add, edit, ping, re-enable), deliveries with their
attempts (read-only; replay)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from notifications.models import EVENT_TYPES, Delivery, DeliveryAttempt, Endpoint
from notifications.webhooks import service, signing


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(choices=[(t, t) for t in EVENT_TYPES],
                                            widget=forms.CheckboxSelectMultiple)  # fmt: skip
    secret = forms.CharField(
        required=False, max_length=200,
        help_text=f"At least {service.MIN_SECRET_LENGTH} characters; leave empty to generate one.",
    )  # fmt: skip

    class Meta:
        model = Endpoint
        fields = ["url", "description", "event_types", "tenant_id", "owner_email", "secret",
                  "active"]  # fmt: skip

    def clean(self):
        data = super().clean()
        secret = data.get("secret") or (self.instance.secret if self.instance.pk else None)
        for error in service.endpoint_errors(data.get("url"), secret, data.get("event_types")):
            field = {"eventTypes": "event_types"}.get(error["field"], error["field"])
            self.add_error(field if field in self.fields else None, error["message"])
        if not data.get("secret"):
            data["secret"] = self.instance.secret if self.instance.pk else signing.new_secret()
        return data


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["url", "tenant_id", "event_types", "active", "consecutive_failures",
                    "disabled_reason"]  # fmt: skip
    list_filter = ["active", "tenant_id"]
    search_fields = ["url", "description", "owner_email"]
    readonly_fields = ["consecutive_failures", "disabled_reason", "disabled_at",
                       "owner_notified_at", "created_at"]  # fmt: skip
    actions = ["send_ping", "enable"]

    @admin.action(description="Send a ping event")
    def send_ping(self, request, queryset):
        for endpoint in queryset:
            delivery = service.ping(endpoint)
            self.message_user(request, f"Ping sent to {endpoint.url}: delivery {delivery.pk}.")

    @admin.action(description="Enable (and reset the failure count)")
    def enable(self, request, queryset):
        count = queryset.update(active=True, consecutive_failures=0, disabled_reason="",
                                disabled_at=None)  # fmt: skip
        self.message_user(request, f"{count} endpoint(s) enabled.")


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "outcome", "response_code", "duration_ms", "error", "response_excerpt",
              "started_at"]  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event_type", "endpoint", "status", "attempts", "response_code",
                    "created_at", "delivered_at"]  # fmt: skip
    list_filter = ["status", "event_type"]
    search_fields = ["event_id", "endpoint__url"]
    raw_id_fields = ["endpoint", "replay_of"]
    inlines = [AttemptInline]
    actions = ["replay"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Replay (a new delivery of the same event)")
    def replay(self, request, queryset):
        for delivery in queryset.select_related("endpoint"):
            if not delivery.endpoint.active:
                self.message_user(request, f"Delivery {delivery.pk}: its endpoint is disabled;"
                                  " enable it first.", messages.WARNING)  # fmt: skip
                continue
            again = service.replay(delivery)
            self.message_user(request, f"Delivery {delivery.pk} replayed as {again.pk}.")
