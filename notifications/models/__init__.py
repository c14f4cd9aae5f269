"""The notifications' models, one module per part of the app, re-exported here."""

from notifications.models.messages import *  # noqa: F403
from notifications.models.messages import __all__ as _messages_all

__all__ = [*_messages_all]
