"""The outbox's public face for the apps that deliver its events (notifications' webhooks).

The catalog writes `OutboundEvent` rows in the transactions that make them true (imports,
reports); a consumer takes the pending ones here, as plain dicts, and they are marked
delivered when its block ends without an error. The dependency is one-way: the catalog
knows nothing of who consumes its outbox, and a consumer knows only this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.utils import timezone

from catalog.models import OutboundEvent


@contextmanager
def pending(limit: int = 100) -> Iterator[list[dict[str, Any]]]:
    """Up to `limit` undelivered events, oldest first: `{id, type, tenantId, key, payload,
    createdAt}`. The block runs in the transaction that locked them (FOR UPDATE SKIP
    LOCKED: two consumers never get the same row); leaving it normally sets their
    `delivered_at`, an exception rolls everything back and leaves them pending."""
    with transaction.atomic():
        rows = list(
            OutboundEvent.objects.select_for_update(skip_locked=True)
            .filter(delivered_at__isnull=True)
            .order_by("created_at", "id")[:limit]
        )
        yield [
            {"id": row.pk, "type": row.type, "tenantId": row.tenant_id, "key": row.key,
             "payload": row.payload, "createdAt": row.created_at.isoformat()}
            for row in rows
        ]  # fmt: skip
        if rows:
            OutboundEvent.objects.filter(pk__in=[row.pk for row in rows]).update(
                delivered_at=timezone.now()
            )
