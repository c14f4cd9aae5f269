"""The notifications app's HTTP API, one module per part (webhooks: notifications/webhook_urls.py)."""
