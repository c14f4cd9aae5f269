"""The catalog's HTTP API (catalog/urls.py, under /api/v1/catalog/), one module per part."""
