"""The notifications app's models, one module per part of the app, re-exported here."""

from notifications.models.alerts import *  # noqa: F403
from notifications.models.alerts import __all__ as _alerts_all
from notifications.models.digests import *  # noqa: F403
from notifications.models.digests import __all__ as _digests_all
from notifications.models.messages import *  # noqa: F403
from notifications.models.messages import __all__ as _messages_all
from notifications.models.reminders import *  # noqa: F403
from notifications.models.reminders import __all__ as _reminders_all
from notifications.models.webhooks import *  # noqa: F403
from notifications.models.webhooks import __all__ as _webhooks_all

__all__ = [*_alerts_all, *_digests_all, *_messages_all, *_reminders_all, *_webhooks_all]
