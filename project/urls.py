from django.contrib import admin
from django.urls import include, path

from tasks import health
from tasks.api import scrape

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", scrape.metrics, name="metrics"),  # Prometheus (tasks/prometheus.py)
    path("api/v1/catalog/", include("catalog.urls")),  # before api/: its catch-all 404s
    # Reports are the catalog's, served at /api/v1/reports/ (issue #12): before api/ too.
    path("api/v1/reports/", include("catalog.report_urls")),
    path("api/admin/", include("catalog.admin_urls")),  # aggregate-daily: before api/ too
    # The inbox (issue #13): no trailing slash, as the issue writes it; before api/ too.
    path("api/v1/", include("notifications.urls")),
    # Webhooks are notifications' (issue #13): before api/ too.
    path("api/v1/webhooks/", include("notifications.webhook_urls")),
    # Reminders are notifications' (issue #13): no trailing slash either; before api/ too.
    path("api/v1/", include("notifications.reminder_urls")),
    path("api/", include("tasks.api.urls")),
    path("admin/", admin.site.urls),
]
