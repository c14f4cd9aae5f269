"""The notifications app's admin, one module per part of the app."""

from notifications.admin import alerts, messages, webhooks  # noqa: F401
