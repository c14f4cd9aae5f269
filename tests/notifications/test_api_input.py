"""Input the fuzzer found answered by a 500, now a 400 naming the field: values PostgreSQL
cannot store, URLs urlsplit cannot parse, unknown filter values."""

from __future__ import annotations

import pytest

from notifications.models import Endpoint, Reminder
from tasks.api.models import ApiToken
from tests.api.conftest import ApiClient, assert_error

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def api() -> ApiClient:
    _, raw = ApiToken.issue("input", "write")
    return ApiClient(raw)


@pytest.mark.parametrize("field", ["url", "description", "tenantId", "ownerEmail"])
def test_it_refuses_an_endpoint_with_a_nul_in_a_field(api, field):
    body = {"url": "https://hooks.example.com/x", "eventTypes": ["ping"]}
    body[field] = body.get(field, "") + "a\x00b"
    error = assert_error(api.post_json("/api/v1/webhooks/endpoints", body), 400, "invalid_request")
    assert error["fields"][0]["field"] == field
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize("url", ["http://[", "http://[::1", "https://example.com:99999/x"])
def test_it_refuses_an_endpoint_url_that_does_not_parse(api, url):
    response = api.post_json("/api/v1/webhooks/endpoints", {"url": url, "eventTypes": ["ping"]})
    assert assert_error(response, 400, "invalid_request")["fields"][0]["field"] == "url"


def test_it_refuses_a_reminder_whose_context_holds_a_nul_or_a_lone_surrogate(api):
    for context in ({"name": "a\x00"}, {"k\x00": 1}, {"name": ["\ud800"]}):
        body = {"template": "t", "channels": ["email"], "at": "08:00", "context": context}
        response = api.post_json("/api/v1/reminders", body)
        assert assert_error(response, 400, "invalid_request")["fields"] == [
            {"field": "context", "message": "must not contain NUL characters or unpaired "
                                            "surrogates"}]  # fmt: skip
    assert not Reminder.objects.exists()


@pytest.mark.parametrize(("param", "value"), [("status", "lost"), ("eventType", "job.x"),
                                              ("status", "a\x00"), ("endpoint", "١")])  # fmt: skip
def test_it_refuses_an_unknown_delivery_filter(api, param, value):
    response = api.get("/api/v1/webhooks/deliveries", {param: value})
    assert assert_error(response, 400, "invalid_query")["fields"][0]["field"] == param
