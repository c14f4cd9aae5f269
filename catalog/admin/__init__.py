"""The catalog's admin, one module per part of the app."""

from catalog.admin import aggregation, comets, imports, reports  # noqa: F401
