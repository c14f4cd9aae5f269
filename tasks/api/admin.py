"""API tokens in the admin: create (the raw token is shown once), list, revoke."""

from __future__ import annotations

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone

from tasks.admin_filters import DateSetFilter
from tasks.api import tokens
from tasks.api.models import TOKEN_PREFIX, ApiToken


class RevokedFilter(DateSetFilter):
    title, parameter_name = "status", "revoked"
    field, labels = "revoked_at", ("live", "revoked")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "shown_prefix", "scope", "created_at", "last_used_at", "revoked_at")
    list_filter = (RevokedFilter, "scope")
    raw_id_fields = ("user",)
    search_fields = ("name", "prefix")
    actions = ("revoke",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "scope", "user")
        return ("name", "scope", "user", "shown_prefix", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("shown_prefix", "created_at", "last_used_at", "revoked_at")

    @admin.display(description="token", ordering="prefix")
    def shown_prefix(self, obj: ApiToken) -> str:
        return f"{TOKEN_PREFIX}_{obj.prefix}_…"

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        if not change:
            # Only the hash is kept: the raw token lives on this request until it is shown.
            request._jobyard_raw_token = obj.fill_new()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj: ApiToken, post_url_continue=None):
        raw = getattr(request, "_jobyard_raw_token", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "token": obj, "raw": raw,
                   "opts": self.model._meta, "title": "API token created"}  # fmt: skip
        return TemplateResponse(request, "jobyard_api/token_created.html", context)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        live = queryset.filter(revoked_at__isnull=True)
        hashes = list(live.values_list("token_hash", flat=True))
        count = live.update(revoked_at=timezone.now())
        tokens.forget(hashes)  # an update() sends no signal: the API's cache, at once
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
