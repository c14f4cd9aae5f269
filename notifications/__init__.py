"""Notifications: email, in-app messages (and webhooks), sent through `notify()`."""

# The function, not the module of the same name: imported here so that
# `from notifications import notify` is the function whichever was imported first.
from notifications.notify import notify

__all__ = ["notify"]
