"""Notifications' paths in the platform's OpenAPI document (/api/v1/openapi.json), added
with `tasks.api_paths` in NotificationsConfig.ready, as the catalog's are: the inbox
(inbox.py), webhooks (webhooks.py) and reminders (reminders.py). The shapes are the views'
own answers written out as JSON schemas; tests/api/test_fuzz.py checks every answer
against them, so the two cannot drift apart unnoticed."""

from __future__ import annotations

from typing import Any

from notifications.api import inbox, reminders, webhooks
from notifications.models import EVENT_TYPES, Delivery, Reminder
from notifications.webhooks.service import MIN_SECRET_LENGTH
from tasks import API_READ, API_WRITE

MS = {"type": ["integer", "null"], "description": "milliseconds since the epoch (UTC)"}
TEXT = {"type": "string"}
NULLABLE_TEXT = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
EVENT_TYPE = {"type": "string", "enum": list(EVENT_TYPES)}
#: Said of the inbox and reminders: a user reads their own with a browser login.
USER_SESSIONS = ("A logged-in user's session (staff or not) may call it too, for their own "
                 "rows; its unsafe requests need the CSRF token.")  # fmt: skip


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    return {**schema, "description": description} if description else schema


def _body(properties: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}  # fmt: skip


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 0}}  # fmt: skip


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


INBOX_ITEM = _object({
    "id": {"type": "integer"}, "title": TEXT, "body": TEXT, "link": NULLABLE_TEXT,
    "read": {"type": "boolean"}, "readAt": MS, "createdAt": MS,
})  # fmt: skip
INBOX_PAGE = _object({
    "items": {"type": "array", "items": {"$ref": "#/components/schemas/InboxItem"}},
    "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
    "unreadCount": {"type": "integer"},
    "next": {"type": ["integer", "null"], "description": "the next page's offset"},
})  # fmt: skip
ENDPOINT = _object({
    "id": {"type": "integer"}, "url": TEXT, "eventTypes": {"type": "array", "items": TEXT},
    "tenantId": TEXT, "description": TEXT, "ownerEmail": TEXT, "active": {"type": "boolean"},
    "consecutiveFailures": {"type": "integer"}, "disabledReason": NULLABLE_TEXT,
    "disabledAt": MS, "createdAt": MS,
})  # fmt: skip
DELIVERY_STATUS = {"type": "string", "enum": [s for s, _ in Delivery.STATUSES]}
DELIVERY = _object({
    "id": {"type": "integer"}, "endpointId": {"type": "integer"}, "eventType": TEXT,
    "eventId": TEXT, "status": DELIVERY_STATUS, "attempts": {"type": "integer"},
    "responseCode": NULLABLE_INT, "error": NULLABLE_TEXT, "replayOf": NULLABLE_INT,
    "jobId": TEXT, "createdAt": MS, "deliveredAt": MS,
})  # fmt: skip
ATTEMPT = _object({
    "number": {"type": "integer"}, "outcome": TEXT, "responseCode": NULLABLE_INT,
    "durationMs": {"type": "number"}, "error": NULLABLE_TEXT, "responseExcerpt": TEXT,
    "startedAt": MS,
})  # fmt: skip
REPEAT = {"type": "string", "enum": [r for r, _ in Reminder.REPEATS]}
REMINDER = _object({
    "id": {"type": "integer"}, "userId": NULLABLE_INT, "recipient": NULLABLE_TEXT,
    "template": TEXT, "context": {"type": "object"}, "channels": {"type": "array", "items": TEXT},
    "at": {"type": "string", "description": "local time, HH:MM:SS"}, "timeZone": TEXT,
    "startDate": {"type": "string", "format": "date"}, "repeat": REPEAT,
    "interval": {"type": "integer"}, "nextFireAt": NULLABLE_TIME, "lastFiredAt": NULLABLE_TIME,
    "active": {"type": "boolean"}, "version": {"type": "integer"},
})  # fmt: skip
#: A reminder's writable fields: POST needs template, channels and at; PATCH any of them.
REMINDER_FIELDS = {
    "userId": {"type": ["integer", "null"], "description": "whose reminder (their addresses)"},
    "recipient": {"type": "string", "maxLength": 254,
                  "description": "an address on each channel, without a user"},
    "template": {"type": "string", "maxLength": 100}, "context": {"type": "object"},
    "channels": {"type": "array", "items": {"type": "string"}},
    "at": {"type": "string", "description": "local time, HH:MM or HH:MM:SS"},
    "timeZone": {"type": "string", "description": "an IANA zone, UTC by default"},
    "startDate": {"type": "string", "format": "date"}, "repeat": REPEAT,
    "interval": {"type": "integer", "minimum": 1, "maximum": 366},
    "active": {"type": "boolean"},
}  # fmt: skip
assert set(REMINDER_FIELDS) == set(reminders.FIELDS)  # the view's fields, one by one


def paths(api: Any) -> dict[str, Any]:
    """Notifications' operations: the inbox, webhook endpoints and deliveries, reminders."""
    api.component("InboxItem", INBOX_ITEM)
    page = api.component("InboxPage", INBOX_PAGE)
    item = api.ref("InboxItem")
    marked = api.component("InboxMarked", _object({"marked": {"type": "integer"}}))
    endpoint = api.component("WebhookEndpoint", ENDPOINT)
    created = api.component("WebhookEndpointCreated", {**ENDPOINT, "properties": {
        **ENDPOINT["properties"], "secret": {"type": "string", "description": "shown once"}},
        "required": [*ENDPOINT["required"], "secret"]})  # fmt: skip
    delivery = api.component("WebhookDelivery", DELIVERY)
    detail = api.component("WebhookDeliveryDetail", {**DELIVERY, "properties": {
        **DELIVERY["properties"], "payload": {"type": "object"},
        "attemptRows": {"type": "array", "items": ATTEMPT}},
        "required": [*DELIVERY["required"], "payload", "attemptRows"]})  # fmt: skip
    reminder = api.component("Reminder", REMINDER)
    new_endpoint = _body({
        "url": {"type": "string", "pattern": "^https?://", "maxLength": 2000},
        "eventTypes": {"type": "array", "items": EVENT_TYPE, "minItems": 1},
        "secret": {"type": "string", "minLength": MIN_SECRET_LENGTH, "maxLength": 200,
                   "description": "generated when left out"},
        "tenantId": {"type": "string", "maxLength": 40},
        "description": {"type": "string", "maxLength": 200},
        "ownerEmail": {"type": "string", "maxLength": 254},
    }, ("url", "eventTypes"))  # fmt: skip
    bad = (400, 413, 415)
    endpoint_id, delivery_id = _path_id("endpointId"), _path_id("deliveryId")
    item_id, reminder_id = _path_id("itemId"), _path_id("reminderId")
    return {
        "/api/v1/notifications": {"get": api.op(
            "inbox", "The caller's in-app notifications, newest first", page, "a page",
            scope=API_READ, errors=(400,),
            params=[_query("unread", {"type": "string", "enum": ["true", "false"]},
                           "only unread (true) or read (false) items"),
                    _query("limit", {"type": "integer", "minimum": 1,
                                     "maximum": inbox.MAX_LIMIT, "default": inbox.DEFAULT_LIMIT},
                           "page size"),
                    _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "")],
            description="docs/notifications.md#in-app. The caller's own: a token's owner's, "
            f"a session's user's. {USER_SESSIONS}")},
        "/api/v1/notifications/{itemId}/read": {"parameters": [item_id], "post": api.op(
            "inboxMarkRead", "Mark one of the caller's notifications read", item,
            "the item", scope=API_WRITE, errors=(404,),
            description=f"Another user's item is 404, as one that does not exist. "
            f"{USER_SESSIONS}")},
        "/api/v1/notifications/read-all": {"post": api.op(
            "inboxMarkAllRead", "Mark every one of the caller's notifications read", marked,
            "how many were unread", scope=API_WRITE, description=USER_SESSIONS)},
        "/api/v1/webhooks/endpoints": {
            "get": api.op("webhookEndpoints", f"Webhook endpoints (the first {webhooks.PAGE})",
                          api.component("WebhookEndpointList", _object({
                              "endpoints": {"type": "array", "items": endpoint}})),
                          "the endpoints", scope=API_READ,
                          description="docs/webhooks.md. Secrets are never listed."),
            "post": api.op("createWebhookEndpoint", "Add an endpoint", created,
                           "the endpoint, with its secret (shown once)", status=201,
                           scope=API_WRITE, errors=bad, body=api.body(new_endpoint, True),
                           description="400 `invalid_request` naming each bad field; "
                           "private and loopback targets are refused when delivered."),
        },
        "/api/v1/webhooks/endpoints/{endpointId}": {"parameters": [endpoint_id], "get": api.op(
            "webhookEndpoint", "One endpoint", endpoint, "the endpoint", scope=API_READ,
            errors=(404,))},
        "/api/v1/webhooks/endpoints/{endpointId}/ping": {"parameters": [endpoint_id],
            "post": api.op("pingWebhookEndpoint", "Send the endpoint a signed `ping` event",
                           delivery, "the delivery, enqueued", status=202, scope=API_WRITE,
                           errors=(404, 409),
                           description="409 `endpoint_disabled` for a disabled endpoint.")},
        "/api/v1/webhooks/deliveries": {"get": api.op(
            "webhookDeliveries", f"Deliveries, newest first (the first {webhooks.PAGE})",
            api.component("WebhookDeliveryList", _object({
                "deliveries": {"type": "array", "items": delivery}})),
            "the deliveries", scope=API_READ, errors=(400,),
            params=[_query("endpoint", {"type": "integer", "minimum": 0}, "one endpoint's"),
                    _query("status", DELIVERY_STATUS, "in this status"),
                    _query("eventType", EVENT_TYPE, "of this event type")])},
        "/api/v1/webhooks/deliveries/{deliveryId}": {"parameters": [delivery_id], "get": api.op(
            "webhookDelivery", "One delivery, with its payload and attempts", detail,
            "the delivery", scope=API_READ, errors=(404,))},
        "/api/v1/webhooks/deliveries/{deliveryId}/replay": {"parameters": [delivery_id],
            "post": api.op("replayWebhookDelivery", "Send a delivery's payload again, as a new "
                           "delivery (`replayOf`)", delivery, "the new delivery, enqueued",
                           status=202, scope=API_WRITE, errors=(404, 409),
                           description="409 `endpoint_disabled` while its endpoint is "
                           "disabled.")},
        "/api/v1/reminders": {
            "get": api.op("reminders", f"Reminders (the first {reminders.PAGE})",
                          api.component("ReminderList", _object({
                              "reminders": {"type": "array", "items": reminder}})),
                          "the reminders", scope=API_READ,
                          description=f"docs/notifications.md#reminders. {USER_SESSIONS} "
                          "A user's session sees their own reminders only."),
            "post": api.op("createReminder", "Add a reminder", reminder, "the reminder, "
                           "scheduled", status=201, scope=API_WRITE, errors=bad,
                           body=api.body(_body(REMINDER_FIELDS, ("template", "channels", "at")),
                                         True),
                           description="400 `invalid_request` naming each bad field. "
                           f"{USER_SESSIONS} A user's session makes reminders for that user "
                           "only (no `recipient`, `userId` theirs or left out)."),
        },
        "/api/v1/reminders/{reminderId}": {
            "parameters": [reminder_id],
            "get": api.op("reminder", "One reminder", reminder, "the reminder",
                          scope=API_READ, errors=(404,), description=USER_SESSIONS),
            "patch": api.op("updateReminder", "Change a reminder: reschedule, or cancel with "
                            '`{"active": false}`', reminder, "the reminder, rescheduled",
                            scope=API_WRITE, errors=(*bad, 404),
                            body=api.body(_body(REMINDER_FIELDS, ()), True),
                            description=USER_SESSIONS),
            "delete": api.op("deleteReminder", "Remove a reminder", {"type": "object"}, "",
                             status=204, scope=API_WRITE, errors=(404,),
                             more={"204": {"description": "removed; no body"}},
                             description=USER_SESSIONS),
        },
    }  # fmt: skip
