"""The catalog's API, included by project/urls.py under api/v1/catalog/."""

from django.urls import path

from catalog.api import comets, imports

urlpatterns = [
    path("comets", comets.comets, name="catalog-comets"),
    path("imports", imports.imports, name="catalog-imports"),
    path("imports/<int:batch_id>", imports.batch_detail, name="catalog-import"),
    path("imports/<int:batch_id>/errors.csv", imports.batch_errors, name="catalog-import-errors"),
]
