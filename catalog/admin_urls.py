"""The catalog's endpoints under /api/admin/ (project/urls.py mounts this module there,
before the platform's api/ include, whose catch-all would 404 them)."""

from django.urls import path

from catalog.api import aggregation

urlpatterns = [
    path("jobs/aggregate-daily", aggregation.aggregate_daily, name="catalog-aggregate-daily"),
]
