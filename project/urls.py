from django.contrib import admin
from django.urls import include, path

from tasks import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/catalog/", include("catalog.urls")),  # before api/: its catch-all 404s
    path("api/admin/", include("catalog.admin_urls")),  # likewise
    path("api/", include("tasks.api.urls")),
    path("admin/", admin.site.urls),
]
