"""Reminders over HTTP, under /api/v1/reminders (notifications/reminder_urls.py).

`POST` creates one, `PATCH` edits (reschedules, cancels with `{"active": false}`),
`DELETE` removes it; every change goes through reminders.schedule(), so the occurrence
that was due is never fired after it and the new one is enqueued. docs/notifications.md.

A token (or a staff session) manages every reminder. A user's own session, not staff
(`user_sessions=True`), sees and changes their own alone: `userId` is theirs (or left out),
and `recipient` is refused, so that a user sends reminders to nobody else's address.
"""

from __future__ import annotations

from datetime import date, time
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from notifications import reminders
from notifications.api.storable import refuse_unstorable
from notifications.models import Reminder
from tasks import API_READ, API_WRITE, ApiError, api_view, read_json

#: Rows per page of the list.
PAGE = 100
#: Body fields → model fields; anything else is refused.
FIELDS = {"userId": "user_id", "recipient": "recipient", "template": "template",
          "context": "context", "channels": "channels", "at": "at", "timeZone": "time_zone",
          "startDate": "start_date", "repeat": "repeat", "interval": "interval",
          "active": "active"}  # fmt: skip


def reminder_json(reminder: Reminder) -> dict[str, Any]:
    def iso(moment):
        return moment.isoformat() if moment else None

    return {
        "id": reminder.pk, "userId": reminder.user_id, "recipient": reminder.recipient or None,
        "template": reminder.template, "context": reminder.context,
        "channels": reminder.channels, "at": reminder.at.isoformat(),
        "timeZone": reminder.time_zone, "startDate": reminder.start_date.isoformat(),
        "repeat": reminder.repeat, "interval": reminder.interval,
        "nextFireAt": iso(reminder.next_fire_at), "lastFiredAt": iso(reminder.last_fired_at),
        "active": reminder.active, "version": reminder.version,
    }  # fmt: skip


def _refuse(errors: list[dict[str, str]]) -> ApiError:
    return ApiError(400, "invalid_request",
                    "; ".join(f"{e['field']}: {e['message']}" for e in errors), fields=errors)  # fmt: skip


def apply(reminder: Reminder, body: dict[str, Any]) -> None:
    """Copy the body's fields onto the row, parsed; ApiError 400 naming each bad one."""
    refuse_unstorable(body)
    errors = [{"field": k, "message": "unknown field"} for k in body if k not in FIELDS]
    for key, value in body.items():
        if key not in FIELDS:
            continue
        try:
            setattr(reminder, FIELDS[key], _parse(key, value))
        except (TypeError, ValueError) as exc:
            errors.append({"field": key, "message": str(exc)})
    if errors:
        raise _refuse(errors)
    if reminder.start_date is None:  # today, where the reminder lives
        try:
            reminder.start_date = (
                timezone.now().astimezone(reminders.zone(reminder.time_zone)).date()
            )
        except ValueError:
            reminder.start_date = date.today()  # check() names timeZone
    if errors := reminders.check(reminder):
        raise _refuse(errors)


def _parse(key: str, value: Any) -> Any:
    if key == "userId":
        if value is None:
            return None
        if type(value) is not int or not get_user_model().objects.filter(pk=value).exists():
            raise ValueError("no such user")
        return value
    if key in ("recipient", "template", "timeZone", "repeat"):
        if not isinstance(value, str) or len(value) > 254:
            raise ValueError("must be a string")
        return value
    if key == "context":
        if not isinstance(value, dict):
            raise ValueError("must be an object")
        return value
    if key == "channels":
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise ValueError("must be a list of channel names")
        return list(dict.fromkeys(value))
    if key == "at":
        if not isinstance(value, str):
            raise ValueError("must be a local time, HH:MM or HH:MM:SS")
        try:
            return time.fromisoformat(value).replace(microsecond=0, tzinfo=None)
        except ValueError:
            raise ValueError("must be a local time, HH:MM or HH:MM:SS") from None
    if key == "startDate":
        if not isinstance(value, str):
            raise ValueError("must be a date, YYYY-MM-DD")
        return date.fromisoformat(value)
    if key == "interval":
        if type(value) is not int or not 1 <= value <= 366:
            raise ValueError("an integer from 1 to 366")
        return value
    if key == "active":
        if type(value) is not bool:
            raise ValueError("must be true or false")
        return value
    raise ValueError("unknown field")


def visible(request: HttpRequest):
    """The reminders the caller may see: all, or a user session's own."""
    principal = request.api_principal
    if principal.user_session:
        return Reminder.objects.filter(user_id=principal.user_id)
    return Reminder.objects.all()


def _own_body(request: HttpRequest, body: dict[str, Any], creating: bool) -> dict[str, Any]:
    """A user session's body: its own userId, no recipient (400 otherwise)."""
    principal = request.api_principal
    if not principal.user_session:
        return body
    errors = []
    if "userId" in body and body["userId"] != principal.user_id:
        errors.append({"field": "userId", "message": "a user's session makes its own reminders"})
    if "recipient" in body:
        errors.append({"field": "recipient", "message": "a user's reminders go to their own "
                       "addresses"})  # fmt: skip
    if errors:
        raise _refuse(errors)
    return {**body, "userId": principal.user_id} if creating else body


@api_view({"GET": API_READ, "POST": API_WRITE}, user_sessions=True)
def reminder_list(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        rows = visible(request).order_by("id")[:PAGE]
        return JsonResponse({"reminders": [reminder_json(r) for r in rows]})
    body = _own_body(request, read_json(request), creating=True)
    missing = [{"field": k, "message": "required"} for k in ("template", "channels", "at")
               if k not in body]  # fmt: skip
    if missing:
        raise _refuse(missing)
    reminder = Reminder(start_date=None)
    apply(reminder, body)
    if reminder.repeat == Reminder.NONE and reminder.active and reminders.next_occurrence(
        reminder.start_date, reminder.at, reminder.time_zone, reminder.repeat,
        reminder.interval, after=timezone.now(),
    ) is None:  # fmt: skip
        raise _refuse([{"field": "at", "message": "that time has passed (a one-off reminder)"}])
    with transaction.atomic():
        reminders.schedule(reminder)
    return JsonResponse(reminder_json(reminder), status=201)


@api_view({"GET": API_READ, "PATCH": API_WRITE, "DELETE": API_WRITE}, user_sessions=True)
def reminder_detail(request: HttpRequest, reminder_id: int) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse(reminder_json(_reminder(request, reminder_id)))
    with transaction.atomic():  # the row locked against a firing job until we commit
        reminder = visible(request).select_for_update().filter(pk=reminder_id).first()
        if reminder is None:
            raise ApiError(404, "reminder_not_found", f"no reminder {reminder_id}")
        if request.method == "DELETE":
            reminder.delete()  # its pending job finds no row and does nothing
            return HttpResponse(status=204)
        apply(reminder, _own_body(request, read_json(request), creating=False))
        reminders.schedule(reminder)
    return JsonResponse(reminder_json(reminder))


def _reminder(request: HttpRequest, reminder_id: int) -> Reminder:
    reminder = visible(request).filter(pk=reminder_id).first()
    if reminder is None:
        raise ApiError(404, "reminder_not_found", f"no reminder {reminder_id}")
    return reminder
