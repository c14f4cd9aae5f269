"""Notifications: email, in-app messages (and webhooks), sent through `notify()`."""


def notify(*args, **kwargs):
    """notifications.notify.notify (imported on first call: this package is imported before
    Django's apps are ready, and the models cannot be)."""
    from notifications.notify import notify as _notify

    return _notify(*args, **kwargs)


__all__ = ["notify"]
