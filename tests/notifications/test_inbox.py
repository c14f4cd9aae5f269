"""GET /api/v1/notifications, POST .../{id}/read, POST .../read-all: one's own items only."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User

from notifications.models import InboxItem
from tasks.api.models import ApiToken
from tests.api.conftest import ApiClient

pytestmark = [pytest.mark.django_db]


def client_for(user, scope: str = "write") -> ApiClient:
    _, raw = ApiToken.issue(f"inbox-{user.username}-{uuid.uuid4().hex[:8]}", scope, user=user)
    return ApiClient(raw)


@pytest.fixture
def ada():
    return User.objects.create(username="ada")


@pytest.fixture
def bo():
    return User.objects.create(username="bo")


def test_it_lists_ones_own_items_newest_first_paginated(ada, bo):
    for n in range(3):
        InboxItem.objects.create(user=ada, title=f"a{n}")
    InboxItem.objects.create(user=bo, title="b0")
    body = client_for(ada, "read").get("/api/v1/notifications", {"limit": 2}).json()
    assert [i["title"] for i in body["items"]] == ["a2", "a1"]
    assert (body["total"], body["next"], body["unreadCount"]) == (3, 2, 3)
    page = client_for(ada, "read").get("/api/v1/notifications", {"limit": 2, "offset": 2}).json()
    assert [i["title"] for i in page["items"]] == ["a0"] and page["next"] is None


def test_it_marks_read_and_filters_unread(ada):
    first = InboxItem.objects.create(user=ada, title="one")
    InboxItem.objects.create(user=ada, title="two")
    api = client_for(ada)
    response = api.post_json(f"/api/v1/notifications/{first.pk}/read")
    assert response.status_code == 200 and response.json()["read"] is True
    unread = api.get("/api/v1/notifications", {"unread": "true"}).json()
    assert [i["title"] for i in unread["items"]] == ["two"]
    assert api.post_json("/api/v1/notifications/read-all").json() == {"marked": 1}
    assert api.get("/api/v1/notifications", {"unread": "true"}).json()["items"] == []


def test_anothers_item_is_404_and_left_alone(ada, bo):
    theirs = InboxItem.objects.create(user=bo, title="bo's")
    response = client_for(ada).post_json(f"/api/v1/notifications/{theirs.pk}/read")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "notification_not_found"
    assert client_for(ada).post_json("/api/v1/notifications/read-all").json() == {"marked": 0}
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_it_needs_credentials_and_the_right_scope(ada):
    item = InboxItem.objects.create(user=ada, title="x")
    assert ApiClient().get("/api/v1/notifications").status_code == 401
    assert ApiClient().post_json("/api/v1/notifications/read-all").status_code == 401
    reader = client_for(ada, "read")
    assert reader.post_json(f"/api/v1/notifications/{item.pk}/read").status_code == 403
    _, raw = ApiToken.issue("service", "read")  # a service's token: no user, no inbox
    assert ApiClient(raw).get("/api/v1/notifications").json()["items"] == []


def test_bad_query_is_400(ada):
    response = client_for(ada, "read").get("/api/v1/notifications", {"unread": "maybe"})
    assert response.status_code == 400
