"""The catalog's API, included by project/urls.py under api/v1/catalog/."""

from django.urls import path

from catalog.api import comets

urlpatterns = [
    path("comets", comets.comets, name="catalog-comets"),
]
