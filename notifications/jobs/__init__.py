"""The notifications' job types, one module per part of the app (the platform imports this)."""

from notifications.jobs import messages  # noqa: F401
