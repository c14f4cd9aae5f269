"""The notifications' admin, one module per part of the app."""

from notifications.admin import messages  # noqa: F401
