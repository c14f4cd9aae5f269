"""Token checks are cached (tasks/api/tokens.py): the API's reads keep answering from Redis
while PostgreSQL is unreachable, and a revocation still takes effect, through the app at
once, behind its back within the cache's time. (With PostgreSQL really stopped, under
gunicorn: tests/api/test_database_down.py.)"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client
from django.utils import timezone

from tasks import enqueue
from tasks.api.models import ApiToken
from tests.api.conftest import ApiClient, assert_error

# Closing a stream or a request sends request_finished, which closes a connection that is
# inside a test's transaction: these tests commit.
pytestmark = pytest.mark.django_db(transaction=True)
STATS = "/api/v1/queues/default/stats"


@pytest.fixture
def cache_for(settings):
    def configure(fresh: float, stale: float = 3600.0) -> None:
        settings.JOBYARD_API = {**settings.JOBYARD_API, "TOKEN_CACHE_SECONDS": fresh,
                                "TOKEN_STALE_SECONDS": stale}  # fmt: skip

    return configure


@pytest.fixture
def database_down(monkeypatch):
    """Every query from now on fails as with PostgreSQL stopped (connection refused)."""

    def down() -> None:
        def refuse(wrapper: BaseDatabaseWrapper) -> None:
            raise OperationalError('connection to server at "127.0.0.1" failed: refused')

        monkeypatch.setattr(BaseDatabaseWrapper, "ensure_connection", refuse)

    return down


def token_row(raw: str) -> ApiToken:
    return ApiToken.objects.get(prefix=raw.split("_")[1])


def test_reads_keep_answering_from_redis_while_the_database_is_down(
    make_token, cache_for, database_down
):
    cache_for(fresh=0.5, stale=60)
    raw, never_used = make_token("write"), make_token("read")
    job = enqueue("t-echo.catalog", {"value": 1}, delay=60_000)
    client = ApiClient(raw)
    assert client.get(STATS).status_code == 200  # checked in PostgreSQL, then cached

    database_down()
    time.sleep(0.6)  # past the fresh time: PostgreSQL is asked, fails, the entry stands in
    for path in (
        STATS,
        "/api/v1/queues",
        "/api/admin/jobs/status",
        "/api/v1/workers",
        f"/api/v1/jobs/catalog/{job.id}",
        f"/api/admin/jobs/status?jobId={job.id}",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.content[:300])  # fmt: skip
    assert client.get(f"/api/v1/jobs/catalog/{job.id}").json()["data"] == {"value": 1}
    # A token not checked before the outage cannot be checked now: 503, as JSON.
    assert_error(ApiClient(never_used).get(STATS), 503, "database_unavailable")
    # /healthz answers; /readyz says which dependency is down.
    assert Client().get("/healthz").status_code == 200
    assert Client().get("/readyz").json()["checks"]["redis"] == "ok"


def test_the_stale_entry_stands_in_only_for_its_documented_time(
    make_token, cache_for, database_down
):
    cache_for(fresh=0.3, stale=1.0)
    client = ApiClient(make_token("read"))
    assert client.get(STATS).status_code == 200
    database_down()
    time.sleep(0.4)
    assert client.get(STATS).status_code == 200
    time.sleep(0.8)  # over a second since the last successful check
    assert_error(client.get(STATS), 503, "database_unavailable")


def test_with_no_stale_time_an_outage_is_a_503_once_the_entry_is_not_fresh(
    make_token, cache_for, database_down
):
    cache_for(fresh=0.3, stale=0)
    client = ApiClient(make_token("read"))
    assert client.get(STATS).status_code == 200
    database_down()
    assert client.get(STATS).status_code == 200  # still fresh
    time.sleep(0.4)
    assert_error(client.get(STATS), 503, "database_unavailable")


def test_a_cached_token_asks_no_database(make_token, cache_for, django_assert_num_queries):
    cache_for(fresh=60)
    client = ApiClient(make_token("read"))
    assert client.get(STATS).status_code == 200  # the lookup and the first use's UPDATE
    with django_assert_num_queries(0):
        assert client.get(STATS).status_code == 200


@pytest.mark.parametrize("how", ["command", "method", "admin", "delete"])
def test_revoking_through_the_app_takes_effect_at_once(make_token, cache_for, how, admin_client):
    cache_for(fresh=3600)
    raw = make_token("read")
    client = ApiClient(raw)
    assert client.get(STATS).status_code == 200  # cached for an hour
    row = token_row(raw)
    if how == "command":
        from django.core.management import call_command

        call_command("api_token", "revoke", row.name, stdout=None)
    elif how == "method":
        row.revoke()
    elif how == "admin":
        admin_client.post("/admin/jobyard_api/apitoken/",
                          {"action": "revoke", "_selected_action": [row.pk]})  # fmt: skip
        assert token_row(raw).revoked
    else:
        row.delete()
    code = "invalid_token" if how == "delete" else "token_revoked"
    assert_error(client.get(STATS), 401, code)


def test_a_revocation_behind_the_apps_back_takes_effect_within_the_cache_time(
    make_token, cache_for
):
    cache_for(fresh=1.0)
    raw = make_token("read")
    client = ApiClient(raw)
    assert client.get(STATS).status_code == 200
    # As an SQL UPDATE would: no signal, the cache is not told.
    ApiToken.objects.filter(pk=token_row(raw).pk).update(revoked_at=timezone.now())
    assert client.get(STATS).status_code == 200  # the cached check, under a second old
    time.sleep(1.1)
    assert_error(client.get(STATS), 401, "token_revoked")
    assert_error(client.get(STATS), 401, "token_revoked")


def test_a_scope_and_the_last_use_come_from_the_cache_as_from_the_row(
    make_token, cache_for, monkeypatch
):
    cache_for(fresh=600)
    client = ApiClient(make_token("read", name="reader"))
    assert client.get(STATS).status_code == 200
    assert_error(client.post("/api/v1/queues/default/pause"), 403, "insufficient_scope")
    first = ApiToken.objects.get(name="reader").last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=5)
    client.get(STATS)
    assert ApiToken.objects.get(name="reader").last_used_at == first  # no write per request

    # Two minutes on, the cached token's use is recorded again, once.
    later = first + timedelta(minutes=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    client.get(STATS)
    assert ApiToken.objects.get(name="reader").last_used_at == later
    ApiToken.objects.filter(name="reader").update(last_used_at=first)
    client.get(STATS)
    assert ApiToken.objects.get(name="reader").last_used_at == first


def test_the_database_failing_on_the_last_use_write_fails_no_request(
    make_token, cache_for, database_down, monkeypatch
):
    cache_for(fresh=60)
    client = ApiClient(make_token("read"))
    assert client.get(STATS).status_code == 200
    database_down()
    monkeypatch.setattr("tasks.api.models.LAST_USED_GRANULARITY", timedelta(0))
    monkeypatch.setattr("tasks.api.tokens.LAST_USED_GRANULARITY", timedelta(0))
    assert client.get(STATS).status_code == 200
