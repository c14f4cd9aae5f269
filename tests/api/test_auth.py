"""Nothing under /api/ answers without a token or a staff session; scopes hold; tokens are
stored hashed, revocable, and their last use is recorded."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from catalog import admin_urls as catalog_admin_urls
from catalog import report_urls
from catalog import urls as catalog_urls
from notifications import reminder_urls, webhook_urls
from notifications import urls as notifications_urls
from tasks.api import urls
from tasks.api.models import ApiToken
from tests.api.conftest import ApiClient, assert_error

#: A value for each URL parameter, so that every pattern can be requested.
SAMPLE = {"queue": "default", "job_id": "no-such-job", "path": "v1/nowhere", "batch_id": 0,
          "report_id": 0, "item_id": 0, "endpoint_id": 0, "delivery_id": 0,
          "reminder_id": 0}  # fmt: skip
SAFE = ("GET", "HEAD")
#: Every URL module mounted under /api/: the platform's, and the domain apps' endpoints.
API_URLCONFS = [catalog_urls, report_urls, catalog_admin_urls, notifications_urls, webhook_urls,
                reminder_urls, urls]  # fmt: skip


def endpoints() -> list[tuple[str, str, str]]:
    """(url, method, scope needed) for every URL pattern under /api/ and each method."""
    found = []
    for pattern in [p for conf in API_URLCONFS for p in conf.urlpatterns]:
        methods = getattr(pattern.callback, "api_methods", None)
        assert methods, f"{pattern.name}: every API view must go through @api_view"
        names = getattr(pattern.pattern, "converters", None) or pattern.pattern.regex.groupindex
        url = reverse(pattern.name, kwargs={name: SAMPLE[name] for name in names})
        found += [(url, method, scope) for method, scope in methods.items()]
    return found


ENDPOINTS = endpoints()
WRITES = [(url, method) for url, method, scope in ENDPOINTS if scope == "write"]
READS = [(url, method) for url, method, scope in ENDPOINTS if scope == "read" and method == "GET"]


def request(client: Client, method: str, url: str):
    return client.generic(method, url, b"{}", content_type="application/json")


@pytest.mark.pure
def test_everything_under_api_is_in_the_walked_module():
    from django.urls import get_resolver

    under_api = [p for p in get_resolver().url_patterns if str(p.pattern).startswith("api")]
    assert [getattr(p, "urlconf_module", None) for p in under_api] == API_URLCONFS


@pytest.mark.pure
def test_it_walks_every_pattern_including_each_row_of_the_design():
    urls_seen = {url for url, _, _ in ENDPOINTS}
    for url in ("/api/admin/jobs/trigger", "/api/admin/jobs/status", "/api/v1/queues",
                "/api/v1/jobs/default/no-such-job", "/api/v1/jobs/default/no-such-job/retry",
                "/api/v1/queues/default", "/api/v1/queues/default/stats",
                "/api/v1/queues/default/pause", "/api/v1/queues/default/resume",
                "/api/v1/queues/default/retry-failed", "/api/v1/queues/default/clean",
                "/api/v1/workers", "/api/v1/events", "/api/v1/openapi.json", "/api/v1/docs",
                "/api/v1/nowhere"):  # fmt: skip
        assert url in urls_seen
    # trigger, retry, remove, pause, resume (and retry-failed, clean), an import need write
    assert {url.rsplit("/", 1)[-1] for url, _ in WRITES} == {
        "trigger", "retry", "no-such-job", "pause", "resume", "retry-failed", "clean", "recover-stalled",
        "imports", "aggregate-daily", "read", "read-all", "endpoints", "ping", "replay",
        "reminders", "0"}  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "method", "scope"), ENDPOINTS)
def test_it_answers_401_without_credentials(url, method, scope, anonymous):
    response = request(anonymous, method, url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    if method != "HEAD":
        assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize(("url", "method", "scope"), ENDPOINTS)
def test_it_answers_401_to_a_revoked_token(url, method, scope, make_token):
    raw = make_token("write")
    ApiToken.objects.get(prefix=raw.split("_")[1]).revoke()
    response = request(ApiClient(raw), method, url)
    assert response.status_code == 401
    if method != "HEAD":
        assert_error(response, 401, "token_revoked")


@pytest.mark.parametrize(("url", "method"), WRITES)
def test_it_answers_403_to_a_read_token_on_a_write_endpoint(url, method, reader):
    assert_error(request(reader, method, url), 403, "insufficient_scope")


@pytest.mark.parametrize(("url", "method"), READS)
def test_it_lets_a_read_token_read(url, method, reader, settings):
    settings.JOBYARD_API = {**settings.JOBYARD_API, "SSE_MAX_SECONDS": 0.1}
    response = request(reader, method, url)
    assert response.status_code not in (401, 403), response.content[:300]
    if response.streaming:
        response.close()


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token jy_abc_def", "Bearer jy_nope_secret",
     "Bearer not-a-token", "Bearer jy__", "Bearer " + "x" * 5000, "Bearer jy_\x00abc_def",
     "Bearer jy_0123456\x00_secret", "Bearer jy_ABCDEF12_secret"],
)  # fmt: skip
def test_it_answers_401_to_a_malformed_or_unknown_token(header, db):
    response = Client(HTTP_AUTHORIZATION=header).get("/api/v1/queues")
    assert_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_token_whose_secret_is_wrong_but_prefix_right(make_token):
    raw = make_token("write")
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    assert_error(ApiClient(forged).get("/api/v1/queues"), 401, "invalid_token")
    assert ApiClient(raw).get("/api/v1/queues").status_code == 200


def test_it_stores_only_a_hash_and_compares_in_constant_time(make_token, monkeypatch):
    raw = make_token("read", name="hashed")
    token = ApiToken.objects.get(name="hashed")
    assert raw.startswith(f"jy_{token.prefix}_")
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiToken.objects.filter(name="hashed").values().get())

    import hmac

    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("tasks.api.models.hmac.compare_digest", spy)
    assert ApiClient(raw).get("/api/v1/queues/default/stats").status_code == 200
    assert compared == [(token.token_hash, token.token_hash)]


def test_it_records_the_last_use_at_most_once_a_minute(make_token, settings):
    # The row is changed behind the API's back below: each request must read it, so the
    # token cache is off here (with it on: tests/api/test_token_cache.py).
    settings.JOBYARD_API = {**settings.JOBYARD_API, "TOKEN_CACHE_SECONDS": 0}
    raw = make_token("read", name="used")
    client = ApiClient(raw)
    assert ApiToken.objects.get(name="used").last_used_at is None
    client.get("/api/v1/queues/default/stats")
    first = ApiToken.objects.get(name="used").last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=5)

    recent = timezone.now() - timedelta(seconds=30)
    ApiToken.objects.filter(name="used").update(last_used_at=recent)
    client.get("/api/v1/queues/default/stats")
    assert ApiToken.objects.get(name="used").last_used_at == recent  # no write per request

    ApiToken.objects.filter(name="used").update(last_used_at=recent - timedelta(minutes=1))
    client.get("/api/v1/queues/default/stats")
    assert ApiToken.objects.get(name="used").last_used_at > recent


def staff_client(staff: bool = True, enforce_csrf: bool = True) -> Client:
    user = User.objects.create_user("op", password="pw-for-tests", is_staff=staff)
    client = Client(enforce_csrf_checks=enforce_csrf)
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_it_accepts_a_staff_session_with_csrf_on_unsafe_methods():
    client = staff_client()
    assert client.get("/api/v1/queues/default/stats").status_code == 200
    # A session is sent by the browser by itself: an unsafe request needs the CSRF token.
    assert_error(client.post("/api/v1/queues/catalog/pause"), 403, "csrf_failed")
    client.get("/admin/")  # its logout form sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value
    response = client.post("/api/v1/queues/catalog/pause", HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 200 and response.json()["paused"] is True
    client.post("/api/v1/queues/catalog/resume", HTTP_X_CSRFTOKEN=csrf)


@pytest.mark.django_db
def test_it_refuses_a_session_that_is_not_staff():
    assert_error(staff_client(staff=False).get("/api/v1/queues"), 403, "staff_required")


#: The views that let in a non-staff user's session (`user_sessions=True`), for that
#: user's own rows: the inbox and reminders (tests/notifications/test_user_sessions.py).
USER_SESSION_VIEWS = {"notifications-inbox", "notifications-read", "notifications-read-all",
                      "reminders", "reminder"}  # fmt: skip


@pytest.mark.pure
def test_only_the_inbox_and_reminders_let_in_a_user_session():
    opened = {p.name for conf in API_URLCONFS for p in conf.urlpatterns
              if getattr(p.callback, "api_user_sessions", False)}  # fmt: skip
    assert opened == USER_SESSION_VIEWS


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "method", "scope"), ENDPOINTS)
def test_every_other_endpoint_refuses_a_session_that_is_not_staff(url, method, scope):
    from django.urls import resolve

    # CSRF off: a refusal must be for who the user is, not for a missing token.
    response = request(staff_client(staff=False, enforce_csrf=False), method, url)
    if resolve(url).url_name in USER_SESSION_VIEWS:
        assert response.status_code not in (401, 403), response.content[:300]
    else:
        assert response.status_code == 403
        if method != "HEAD":
            assert_error(response, 403, "staff_required")


@pytest.mark.django_db
def test_a_bearer_token_needs_no_csrf_and_beats_a_session_cookie(make_token):
    client = staff_client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token('write')}"
    assert client.post("/api/v1/queues/catalog/resume").status_code == 200
    client.defaults["HTTP_AUTHORIZATION"] = "Bearer jy_bad_token"
    assert_error(client.get("/api/v1/queues"), 401, "invalid_token")


# --- manage.py api_token -------------------------------------------------------------------


def run(*args: str) -> tuple[str, str]:
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command("api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_the_command_creates_lists_and_revokes_tokens():
    raw, note = run("create", "deploy-bot", "--scope", "write")
    raw = raw.strip()
    assert "Copy it now" in note
    assert ApiClient(raw).post("/api/v1/queues/catalog/resume").status_code == 200
    reader_raw = run("create", "dashboard")[0].strip()  # read by default
    assert_error(ApiClient(reader_raw).post("/api/v1/queues/catalog/resume"), 403)

    listing = run("list")[0]
    prefix = raw.split("_")[1]
    assert "deploy-bot" in listing and f"jy_{prefix}_" in listing and "write" in listing
    assert raw.split("_", 2)[2] not in listing  # the secret is never shown again
    import json

    rows = {r["name"]: r for r in json.loads(run("list", "--json")[0])}
    assert rows["deploy-bot"]["lastUsedAt"] is not None and rows["dashboard"]["scope"] == "read"

    assert "revoked" in run("revoke", "deploy-bot")[0]
    assert_error(ApiClient(raw).get("/api/v1/queues"), 401, "token_revoked")
    run("revoke", reader_raw.split("_")[1])  # by prefix
    assert_error(ApiClient(reader_raw).get("/api/v1/queues"), 401, "token_revoked")
    assert json.loads(run("list", "--json")[0])[0]["revokedAt"] is not None


@pytest.mark.django_db
def test_the_command_refuses_a_duplicate_name_and_an_unknown_token():
    run("create", "once")
    with pytest.raises(CommandError, match="exists"):
        run("create", "once")
    with pytest.raises(CommandError, match="no token") as caught:
        run("revoke", "nobody")
    assert caught.value.returncode == 3


# --- the admin -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_creates_a_token_shows_it_once_and_revokes_it(admin_client):
    response = admin_client.post(
        "/admin/jobyard_api/apitoken/add/", {"name": "from-admin", "scope": "write"}
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(name="from-admin")
    raw = response.context["raw"]
    assert (
        raw in response.content.decode()
        and token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    )
    assert ApiClient(raw).get("/api/v1/queues").status_code == 200

    listing = admin_client.get("/admin/jobyard_api/apitoken/").content.decode()
    assert "from-admin" in listing and f"jy_{token.prefix}_" in listing and raw not in listing
    change = admin_client.get(f"/admin/jobyard_api/apitoken/{token.pk}/change/").content.decode()
    assert raw not in change

    admin_client.post("/admin/jobyard_api/apitoken/",
                      {"action": "revoke", "_selected_action": [token.pk]})  # fmt: skip
    assert ApiToken.objects.get(pk=token.pk).revoked
    assert_error(ApiClient(raw).get("/api/v1/queues"), 401, "token_revoked")
    live = admin_client.get("/admin/jobyard_api/apitoken/?revoked=no").content.decode()
    revoked = admin_client.get("/admin/jobyard_api/apitoken/?revoked=yes").content.decode()
    assert "from-admin" not in live and "from-admin" in revoked
