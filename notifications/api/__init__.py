"""The notifications' HTTP API (notifications/urls.py, under /api/v1/notifications), one
module per part."""
