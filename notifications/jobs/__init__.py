"""The notifications app's job types, one module per part of the app (the platform imports this)."""

from notifications.jobs import alerts, messages, reminders, sms, sweep, webhooks  # noqa: F401
