"""Episodes: an alert opens once when its rule starts firing for a subject, and resolves
once when it stops; each check in between updates its last and peak value and sends nothing.

Once, under concurrency: the open row is locked (`select_for_update`) before it is updated,
and opening is an insert under a unique partial index on (rule, subject) while open, so of
two checks racing only one inserts, and only the inserter announces it. Resolving is a
conditional UPDATE (`resolved_at IS NULL`) that must change exactly one row; only the check
that changed it announces it. Announcements are written in the same transaction (Message
rows, webhook Delivery rows) and their jobs go out when it commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from notifications.alerts import rules
from notifications.alerts.rules import Reading
from notifications.models import Alert
from notifications.notify import notify
from notifications.webhooks.service import create_deliveries

log = structlog.get_logger("jobyard.notifications.alerts")

#: The webhook event types (notifications.models.EVENT_TYPES) and email templates.
OPENED, RESOLVED = "opened", "resolved"


@dataclass
class Outcome:
    opened: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    still_open: list[Alert] = field(default_factory=list)

    def summary(self) -> dict[str, list[str]]:
        return {name: [f"{a.rule}:{a.subject}" for a in alerts]
                for name, alerts in (("opened", self.opened), ("resolved", self.resolved),
                                     ("open", self.still_open))}  # fmt: skip


def check() -> Outcome:
    """One turn: read the figures, apply the rules, open / update / resolve alerts."""
    return apply(rules.readings(rules.snapshot()))


def apply(readings: list[Reading], now: datetime | None = None) -> Outcome:
    """Alerts for `readings`: a firing reading opens its (rule, subject) or updates the open
    one; an open alert with no firing reading (stopped firing, or no longer measured: a
    queue removed, a lost worker back or forgotten, maxmemory unset) is resolved."""
    now = now or timezone.now()
    outcome = Outcome()
    firing = {(r.rule, r.subject): r for r in readings if r.firing}
    latest = {(r.rule, r.subject): r for r in readings}
    for reading in firing.values():
        alert, opened = open_or_update(reading, now)
        if alert is not None:
            (outcome.opened if opened else outcome.still_open).append(alert)
    for alert in Alert.objects.filter(resolved_at__isnull=True):
        key = (alert.rule, alert.subject)
        if key not in firing and resolve(alert, latest.get(key), now):
            outcome.resolved.append(alert)
    return outcome


def open_or_update(reading: Reading, now: datetime) -> tuple[Alert | None, bool]:
    """(the open alert, whether this call opened it)."""
    with transaction.atomic():
        alert = (Alert.objects.select_for_update()
                 .filter(rule=reading.rule, subject=reading.subject, resolved_at__isnull=True)
                 .first())  # fmt: skip
        if alert is not None:
            alert.last_value = reading.value
            alert.peak_value = max(alert.peak_value, reading.value)
            alert.checked_at = now
            alert.save(update_fields=["last_value", "peak_value", "checked_at"])
            return alert, False
        try:
            with transaction.atomic():  # a savepoint: the race's loser carries on
                alert = Alert.objects.create(
                    rule=reading.rule, subject=reading.subject, started_at=now, checked_at=now,
                    threshold=reading.threshold, peak_value=reading.value,
                    last_value=reading.value, message=reading.message,
                )  # fmt: skip
        except IntegrityError:  # a concurrent check opened it first, and announces it
            return None, False
        announce(alert, OPENED)
        return alert, True


def resolve(alert: Alert, reading: Reading | None, now: datetime) -> bool:
    """Resolve `alert` unless another check did; whether this call did."""
    with transaction.atomic():
        fields = {"resolved_at": now}
        if reading is not None:
            fields.update(last_value=reading.value, checked_at=now)
        if Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(**fields) != 1:
            return False
        alert.refresh_from_db()
        announce(alert, RESOLVED)
        return True


def announce(alert: Alert, what: str) -> None:
    """Log it, email ALERT_EMAILS (notify(), template alert-<what>) and make an `alert.<what>`
    delivery for each subscribed webhook endpoint (the operator's: no tenant)."""
    payload = alert.payload()
    log.warning(f"alert_{what}", **{k: v for k, v in payload.items() if k != "message"},
                text=alert.message)  # fmt: skip
    if settings.ALERT_EMAILS:
        notify(list(settings.ALERT_EMAILS), f"alert-{what}", payload, channels=("email",))
    create_deliveries(f"alert.{what}", f"alert_{alert.pk}_{what}", payload)
