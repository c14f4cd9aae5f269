"""The catalog's job types, one module per part; the platform imports this package."""

from catalog.jobs import comets  # noqa: F401
