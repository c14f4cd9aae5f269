"""Jobyard's admin site: Django's, plus the dashboard, the trigger form and a Flower link.

Installed in place of the stock site (INSTALLED_APPS lists
tasks.admin_config.JobyardAdminConfig), so every `admin.site.register` elsewhere lands here as usual.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import path


class JobyardAdminSite(admin.AdminSite):
    site_header = "Jobyard"
    site_title = "Jobyard admin"
    index_title = "Jobs, schedules and domain data"

    def get_urls(self):
        from tasks import admin_views

        ours = [
            path("dashboard/", self.admin_view(admin_views.dashboard), name="jobyard_dashboard"),
            path(
                "dashboard/queues/<str:queue>/<str:action>/",
                self.admin_view(admin_views.queue_action),
                name="jobyard_queue_action",
            ),
            path(
                "dashboard/queues/<str:queue>/groups/<str:group>/<str:action>/",
                self.admin_view(admin_views.group_action),
                name="jobyard_group_action",
            ),
            path("trigger/", self.admin_view(admin_views.trigger), name="jobyard_trigger"),
        ]
        return ours + super().get_urls()

    def each_context(self, request):
        context = super().each_context(request)
        context["flower_url"] = settings.FLOWER_URL
        return context
