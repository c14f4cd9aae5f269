"""Every error under /api/ is JSON: those Django makes before a view runs (a Host outside
ALLOWED_HOSTS) and its refusals of a request body too; the rest of the site is untouched."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client, RequestFactory

from tasks.api.middleware import ApiJsonErrors
from tests.api.conftest import ApiClient, assert_error


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("path", ["/api/v1/queues", "/api/admin/jobs/trigger", "/api/nowhere"])
def test_a_host_outside_allowed_hosts_is_a_json_400(make_token, settings, debug, path):
    settings.DEBUG = debug
    for client in (ApiClient(make_token("read")), Client()):
        response = client.get(path, HTTP_HOST="evil.example")
        error = assert_error(response, 400, "disallowed_host")
        assert "evil.example" not in error["message"]
        response = client.post(path, b"{}", content_type="application/json",
                               HTTP_HOST="evil.example:8000")  # fmt: skip
        assert_error(response, 400, "disallowed_host")


@pytest.mark.django_db
def test_outside_the_api_a_bad_host_is_answered_as_django_does(settings):
    settings.DEBUG = False
    response = Client().get("/admin/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.pure
def test_an_html_error_a_middleware_made_under_api_becomes_json():
    def html(status: int, **headers: str):
        def get_response(request):
            response = HttpResponse("<h1>no</h1>", status=status)
            for name, value in headers.items():
                response[name] = value
            return response

        return get_response

    def error_of(response) -> dict:
        assert response["Content-Type"] == "application/json"
        return json.loads(response.content)["error"]

    request = RequestFactory().get("/api/v1/queues", HTTP_HOST="testserver")
    rewritten = ApiJsonErrors(html(500))(request)
    assert (rewritten.status_code, error_of(rewritten)["code"]) == (500, "internal_error")
    rewritten = ApiJsonErrors(html(405, Allow="GET"))(request)
    assert (rewritten.status_code, error_of(rewritten)["code"]) == (405, "method_not_allowed")
    assert rewritten["Allow"] == "GET"
    elsewhere = RequestFactory().get("/admin/", HTTP_HOST="testserver")
    assert ApiJsonErrors(html(500))(elsewhere)["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_django_refusing_a_session_request_body_is_a_json_400_not_a_500():
    user = User.objects.create_user("op", password="pw-for-tests", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/admin/")  # its logout form sets the CSRF cookie
    # The CSRF check reads the form body: Django refuses one of over 1,000 fields.
    body = "&".join(f"f{i}=1" for i in range(1500))
    response = client.post("/api/v1/queues/default/pause", body,
                           content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert_error(response, 400, "bad_request")
