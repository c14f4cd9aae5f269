"""The notifications app's admin, one module per part of the app."""

from notifications.admin import alerts, digests, messages, reminders, webhooks  # noqa: F401
