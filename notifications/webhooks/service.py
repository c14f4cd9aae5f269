"""Making deliveries: for an event (each subscribed endpoint gets one), a ping, a replay.

Every delivery is a row first, then a `deliver-webhook` job (`delivery-{pk}`) sent when
the row's transaction commits (tasks.enqueue inside atomic()).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import Q

import tasks
from notifications.models import EVENT_TYPES, Delivery, Endpoint

#: The shortest secret accepted (characters): HMAC with less is guessable.
MIN_SECRET_LENGTH = 24
JOB_TYPE = "deliver-webhook"


def endpoint_errors(url: Any, secret: Any, event_types: Any) -> list[dict[str, str]]:
    """What is wrong with an endpoint's fields, as `{field, message}` (API names)."""
    errors = []
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        # "http://[" raises here, "http://h:99999" at .port: refused now, not at delivery.
        host = parts.hostname if parts is not None and parts.port != -1 else None
    except ValueError:
        parts = host = None
    if parts is None or not host or parts.scheme not in ("http", "https"):
        errors.append({"field": "url", "message": "must be an http:// or https:// URL"})
    elif len(url) > 2000:
        errors.append({"field": "url", "message": "must be at most 2000 characters"})
    if secret is not None and (not isinstance(secret, str) or not 24 <= len(secret) <= 200):
        errors.append({"field": "secret",
                       "message": f"must be a string of {MIN_SECRET_LENGTH} to 200 characters"})  # fmt: skip
    if not isinstance(event_types, list) or not event_types:
        errors.append({"field": "eventTypes", "message": "must be a non-empty list of event types"})
    else:
        unknown = [t for t in event_types if t not in EVENT_TYPES]
        if unknown:
            errors.append({"field": "eventTypes",
                           "message": f"unknown event types: {', '.join(map(str, unknown))};"
                                      f" known: {', '.join(EVENT_TYPES)}"})  # fmt: skip
    return errors


def subscribers(event_type: str, tenant_id: str = "") -> list[Endpoint]:
    """Active endpoints subscribed to `event_type`: the tenant's, and the operator's (no tenant)."""
    tenants = Q(tenant_id="") | Q(tenant_id=tenant_id) if tenant_id else Q(tenant_id="")
    return list(Endpoint.objects.filter(tenants, active=True, event_types__contains=[event_type]))


def enqueue(delivery: Delivery) -> None:
    """Send the delivery's job once its row commits; the job id makes a second call a no-op."""
    tasks.enqueue(JOB_TYPE, {"delivery_id": delivery.pk}, job_id=delivery.job_id)


def create_deliveries(event_type: str, event_id: str, payload: dict[str, Any],
                      tenant_id: str = "", endpoints: list[Endpoint] | None = None) -> list[Delivery]:  # fmt: skip
    """One delivery of the event per subscribed endpoint; a second call for the same event
    makes none (the (endpoint, event id) constraint): safe for at-least-once sources."""
    made = []
    with transaction.atomic():
        for endpoint in subscribers(event_type, tenant_id) if endpoints is None else endpoints:
            delivery, created = Delivery.objects.get_or_create(
                endpoint=endpoint, event_id=event_id, replay_of=None,
                defaults={"event_type": event_type, "payload": payload},
            )  # fmt: skip
            if created:
                enqueue(delivery)
                made.append(delivery)
    return made


def ping(endpoint: Endpoint) -> Delivery:
    """A `ping` test event to `endpoint`, whatever it subscribes to."""
    event_id = f"ping_{uuid.uuid4().hex}"
    payload = {"endpointId": endpoint.pk, "message": "ping from Jobyard"}
    with transaction.atomic():
        delivery = Delivery.objects.create(endpoint=endpoint, event_type="ping",
                                           event_id=event_id, payload=payload)  # fmt: skip
        enqueue(delivery)
    return delivery


def replay(delivery: Delivery) -> Delivery:
    """Deliver `delivery`'s event again: a new row (`replay_of` the original), the same
    event id (`webhook-id`) and payload, and a fresh budget of attempts. The original row
    and its attempts stay as they were: the record of what happened is not rewritten."""
    with transaction.atomic():
        again = Delivery.objects.create(
            endpoint_id=delivery.endpoint_id, event_type=delivery.event_type,
            event_id=delivery.event_id, payload=delivery.payload,
            replay_of_id=delivery.replay_of_id or delivery.pk,
        )  # fmt: skip
        enqueue(again)
    return again
