"""The notifications app's HTTP API, one module per part: the inbox (notifications/urls.py,
under /api/v1/notifications) and webhooks (notifications/webhook_urls.py)."""
