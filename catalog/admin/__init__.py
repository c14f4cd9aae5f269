"""The catalog's admin pages, one module per part."""

from catalog.admin import comets  # noqa: F401
