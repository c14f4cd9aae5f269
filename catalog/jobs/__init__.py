"""The catalog's job types, one module per part of the app (the platform imports this)."""

from catalog.jobs import aggregation, comets, imports, reports  # noqa: F401
