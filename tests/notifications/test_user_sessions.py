"""A logged-in user who is not staff reads their own inbox and manages their own reminders
with their browser session (`api_view(..., user_sessions=True)`): never another user's,
and unsafe requests need the CSRF token. tests/api/test_auth.py proves every other
endpoint refuses such a session."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from notifications.models import InboxItem, Reminder
from tests.api.conftest import assert_error

pytestmark = [pytest.mark.django_db]


def session_for(user: User) -> tuple[Client, str]:
    """A client logged in as `user`, enforcing CSRF, and its CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/admin/login/")  # its form sets the CSRF cookie
    return client, client.cookies["csrftoken"].value


@pytest.fixture
def ada():
    return User.objects.create_user("ada", email="ada@example.com", password="pw-for-tests")


@pytest.fixture
def bo():
    return User.objects.create_user("bo", email="bo@example.com", password="pw-for-tests")


def test_a_user_session_reads_and_marks_its_own_inbox_only(ada, bo):
    mine = InboxItem.objects.create(user=ada, title="mine")
    theirs = InboxItem.objects.create(user=bo, title="theirs")
    client, csrf = session_for(ada)
    body = client.get("/api/v1/notifications").json()
    assert [i["title"] for i in body["items"]] == ["mine"] and body["unreadCount"] == 1

    assert_error(client.post(f"/api/v1/notifications/{mine.pk}/read"), 403, "csrf_failed")
    response = client.post(f"/api/v1/notifications/{mine.pk}/read", HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 200 and response.json()["read"] is True
    assert_error(client.post(f"/api/v1/notifications/{theirs.pk}/read", HTTP_X_CSRFTOKEN=csrf),
                 404, "notification_not_found")  # fmt: skip
    assert client.post("/api/v1/notifications/read-all", HTTP_X_CSRFTOKEN=csrf).json() == {
        "marked": 0}  # fmt: skip
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_an_inactive_users_session_is_refused(ada):
    client, _ = session_for(ada)
    User.objects.filter(pk=ada.pk).update(is_active=False)
    response = client.get("/api/v1/notifications")
    assert response.status_code in (401, 403)


def test_a_user_session_manages_its_own_reminders_only(ada, bo):
    theirs = Reminder.objects.create(user=bo, template="reminder", channels=["email"],
                                     at="08:00", start_date="2030-01-01", repeat="daily")  # fmt: skip
    client, csrf = session_for(ada)

    def send(method: str, url: str, body=None):
        data = b"" if body is None else json.dumps(body)
        return client.generic(
            method, url, data, content_type="application/json", HTTP_X_CSRFTOKEN=csrf
        )

    created = send("POST", "/api/v1/reminders", {
        "template": "reminder", "context": {"title": "pills"}, "channels": ["email"],
        "at": "08:30", "repeat": "daily"})  # fmt: skip
    assert created.status_code == 201, created.content
    mine = created.json()
    assert mine["userId"] == ada.pk and mine["recipient"] is None

    assert [r["id"] for r in client.get("/api/v1/reminders").json()["reminders"]] == [mine["id"]]
    assert_error(client.get(f"/api/v1/reminders/{theirs.pk}"), 404, "reminder_not_found")
    assert_error(send("PATCH", f"/api/v1/reminders/{theirs.pk}", {"active": False}), 404)
    assert_error(send("DELETE", f"/api/v1/reminders/{theirs.pk}"), 404)
    assert Reminder.objects.get(pk=theirs.pk).active

    for body, field in (({"userId": bo.pk}, "userId"), ({"recipient": "x@example.com"},
                                                        "recipient")):  # fmt: skip
        new = {"template": "reminder", "channels": ["email"], "at": "08:30", **body}
        error = assert_error(send("POST", "/api/v1/reminders", new), 400, "invalid_request")
        assert error["fields"][0]["field"] == field
        error = assert_error(send("PATCH", f"/api/v1/reminders/{mine['id']}", body), 400)
        assert error["fields"][0]["field"] == field

    patched = send("PATCH", f"/api/v1/reminders/{mine['id']}", {"at": "09:00"})
    assert patched.status_code == 200 and patched.json()["at"] == "09:00:00"
    # No CSRF token: refused, as every session's unsafe request.
    response = client.delete(f"/api/v1/reminders/{mine['id']}")
    assert_error(response, 403, "csrf_failed")
    assert send("DELETE", f"/api/v1/reminders/{mine['id']}").status_code == 204
