"""Webhooks over HTTP, under /api/v1/webhooks/ (notifications/webhook_urls.py).

Authentication, scopes and JSON errors are the platform's (`api_view`, docs/api.md): a read
token lists, a write token creates endpoints, pings and replays. docs/webhooks.md.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from notifications.api.storable import refuse_unstorable
from notifications.models import EVENT_TYPES, Delivery, Endpoint
from notifications.webhooks import service, signing
from tasks import API_READ, API_WRITE, ApiError, api_view, read_json

#: Rows per page of a list.
PAGE = 100


def _ms(moment) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.pk, "url": endpoint.url, "eventTypes": endpoint.event_types,
        "tenantId": endpoint.tenant_id, "description": endpoint.description,
        "ownerEmail": endpoint.owner_email, "active": endpoint.active,
        "consecutiveFailures": endpoint.consecutive_failures,
        "disabledReason": endpoint.disabled_reason or None,
        "disabledAt": _ms(endpoint.disabled_at), "createdAt": _ms(endpoint.created_at),
    }  # fmt: skip


def delivery_json(delivery: Delivery, attempts: bool = False) -> dict[str, Any]:
    found = {
        "id": delivery.pk, "endpointId": delivery.endpoint_id, "eventType": delivery.event_type,
        "eventId": delivery.event_id, "status": delivery.status, "attempts": delivery.attempts,
        "responseCode": delivery.response_code, "error": delivery.error or None,
        "replayOf": delivery.replay_of_id, "jobId": delivery.job_id,
        "createdAt": _ms(delivery.created_at), "deliveredAt": _ms(delivery.delivered_at),
    }  # fmt: skip
    if attempts:
        found["payload"] = delivery.payload
        found["attemptRows"] = [
            {"number": a.number, "outcome": a.outcome, "responseCode": a.response_code,
             "durationMs": a.duration_ms, "error": a.error or None,
             "responseExcerpt": a.response_excerpt, "startedAt": _ms(a.started_at)}
            for a in delivery.attempt_rows.all()
        ]  # fmt: skip
    return found


@api_view({"GET": API_READ, "POST": API_WRITE})
def endpoints(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        rows = Endpoint.objects.order_by("id")[:PAGE]
        return JsonResponse({"endpoints": [endpoint_json(e) for e in rows]})
    body = read_json(request)
    refuse_unstorable(body)
    url, secret, event_types = body.get("url"), body.get("secret"), body.get("eventTypes")
    errors = service.endpoint_errors(url, secret, event_types)
    for name, limit in (("tenantId", 40), ("description", 200), ("ownerEmail", 254)):
        value = body.get(name, "")
        if not isinstance(value, str) or len(value) > limit:
            errors.append({"field": name, "message": f"must be a string of at most {limit}"})
    if errors:
        raise ApiError(400, "invalid_request",
                       "; ".join(f"{e['field']}: {e['message']}" for e in errors), fields=errors)  # fmt: skip
    endpoint = Endpoint.objects.create(
        url=url, secret=secret or signing.new_secret(), event_types=list(dict.fromkeys(event_types)),
        tenant_id=body.get("tenantId", ""), description=body.get("description", ""),
        owner_email=body.get("ownerEmail", ""),
    )  # fmt: skip
    # The secret is shown once, here: a receiver needs it to verify signatures.
    return JsonResponse({**endpoint_json(endpoint), "secret": endpoint.secret}, status=201)


def _endpoint(endpoint_id: int) -> Endpoint:
    endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise ApiError(404, "endpoint_not_found", f"no endpoint {endpoint_id}")
    return endpoint


def _delivery(delivery_id: int) -> Delivery:
    delivery = Delivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        raise ApiError(404, "delivery_not_found", f"no delivery {delivery_id}")
    return delivery


@api_view({"GET": API_READ})
def endpoint_detail(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    return JsonResponse(endpoint_json(_endpoint(endpoint_id)))


@api_view({"POST": API_WRITE})
def endpoint_ping(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint(endpoint_id)
    if not endpoint.active:
        raise ApiError(409, "endpoint_disabled", f"endpoint {endpoint_id} is disabled")
    return JsonResponse(delivery_json(service.ping(endpoint)), status=202)


@api_view({"GET": API_READ})
def deliveries(request: HttpRequest) -> HttpResponse:
    rows = Delivery.objects.order_by("-id")
    for param, field in (("endpoint", "endpoint_id"), ("status", "status"),
                         ("eventType", "event_type")):  # fmt: skip
        if value := request.GET.get(param):
            known = {"endpoint_id": None, "status": [s for s, _ in Delivery.STATUSES],
                     "event_type": EVENT_TYPES}[field]  # fmt: skip
            if field == "endpoint_id" and not (value.isascii() and value.isdigit()):
                raise ApiError(400, "invalid_query", "endpoint must be an id",
                               fields=[{"field": "endpoint", "message": "must be an integer"}])  # fmt: skip
            if known is not None and value not in known:
                message = f"one of {', '.join(known)}"
                raise ApiError(400, "invalid_query", f"{param}: {message}",
                               fields=[{"field": param, "message": message}])  # fmt: skip
            rows = rows.filter(**{field: value})
    return JsonResponse({"deliveries": [delivery_json(d) for d in rows[:PAGE]]})


@api_view({"GET": API_READ})
def delivery_detail(request: HttpRequest, delivery_id: int) -> HttpResponse:
    return JsonResponse(delivery_json(_delivery(delivery_id), attempts=True))


@api_view({"POST": API_WRITE})
def delivery_replay(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = _delivery(delivery_id)
    if not delivery.endpoint.active:
        raise ApiError(409, "endpoint_disabled",
                       f"endpoint {delivery.endpoint_id} is disabled: enable it first")  # fmt: skip
    return JsonResponse(delivery_json(service.replay(delivery)), status=202)
