"""The caller's in-app inbox: GET /api/v1/notifications, POST .../{id}/read, POST .../read-all.

Authentication, scopes and JSON errors are the platform's (`api_view`, docs/api.md): a
token whose owner is the user (read scope to list, write to mark), or the user's own
session, staff or not (`user_sessions=True`; marking needs the CSRF token). The
inbox is always the caller's own: another user's item is 404, as one that does not exist.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from notifications.models import InboxItem
from tasks import API_READ, API_WRITE, ApiError, api_view

#: Page size: `?limit=` (1..MAX_LIMIT), `?offset=`.
DEFAULT_LIMIT, MAX_LIMIT = 20, 100


def _ms(moment) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def item_json(item: InboxItem) -> dict[str, Any]:
    return {"id": item.pk, "title": item.title, "body": item.body, "link": item.link or None,
            "read": item.read_at is not None, "readAt": _ms(item.read_at),
            "createdAt": _ms(item.created)}  # fmt: skip


def own_items(request: HttpRequest):
    """The caller's items; a token without an (active) owner has an empty inbox (a
    service's token reads nothing, and marks nothing: 404)."""
    user_id = request.api_principal.user_id
    if user_id is None or not get_user_model().objects.filter(pk=user_id, is_active=True).exists():
        return InboxItem.objects.none()
    return InboxItem.objects.filter(user_id=user_id)


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_query", f"{field}: {message}",
                    fields=[{"field": field, "message": message}])  # fmt: skip


def _int(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _bad(name, f"an integer from {low} to {high}")
    return value


@api_view({"GET": API_READ}, user_sessions=True)
def inbox(request: HttpRequest) -> HttpResponse:
    items = own_items(request)
    unread = request.GET.get("unread")
    if unread not in (None, "true", "false"):
        raise _bad("unread", "true or false")
    if unread == "true":
        items = items.filter(read_at__isnull=True)
    elif unread == "false":
        items = items.filter(read_at__isnull=False)
    limit = _int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int(request, "offset", 0, 0, 10**9)
    page = list(items[offset : offset + limit])
    total = items.count()
    return JsonResponse({
        "items": [item_json(item) for item in page], "total": total, "limit": limit,
        "offset": offset, "unreadCount": own_items(request).filter(read_at__isnull=True).count(),
        "next": offset + limit if offset + limit < total else None,
    })  # fmt: skip


@api_view({"POST": API_WRITE}, user_sessions=True)
def mark_read(request: HttpRequest, item_id: int) -> HttpResponse:
    item = own_items(request).filter(pk=item_id).first()
    if item is None:
        raise ApiError(404, "notification_not_found", f"no notification {item_id}")
    if item.read_at is None:
        item.read_at = timezone.now()
        item.save(update_fields=["read_at"])
    return JsonResponse(item_json(item))


@api_view({"POST": API_WRITE}, user_sessions=True)
def mark_all_read(request: HttpRequest) -> HttpResponse:
    marked = own_items(request).filter(read_at__isnull=True).update(read_at=timezone.now())
    return JsonResponse({"marked": marked})
