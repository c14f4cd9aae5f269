"""Redis settings that lose jobs (eviction; no AOF in production) are warned about once
per process, and /readyz says "degraded", on a Redis of the test's own started with them."""

from __future__ import annotations

import threading

import pytest
import structlog
from django.test import Client

from project.localdev import RedisServer, free_port
from tasks import connection, redis_settings
from tests.conftest import wait_for


@pytest.fixture
def bad_redis(tmp_path, settings, monkeypatch):
    """A private Redis that evicts keys when full (and, as every test Redis, has no AOF,
    which the test settings do not ask for: DEBUG is on where they are read)."""
    server = RedisServer(free_port(), tmp_path / "redis")
    server.start()
    settings.REDIS_URL = server.url
    connection._client_for_pid.cache_clear()
    connection.get_redis().config_set("maxmemory-policy", "allkeys-lru")
    monkeypatch.setattr(redis_settings, "_warned", threading.Event())  # a fresh process
    yield server
    server.stop()
    connection._client_for_pid.cache_clear()


@pytest.mark.django_db
def test_readyz_says_degraded_and_the_web_warns_once(bad_redis):
    with structlog.testing.capture_logs() as logs:
        first = Client().get("/readyz")
        second = Client().get("/readyz")
    for response in (first, second):
        assert response.status_code == 200  # still ready: taking it out would help nothing
        body = response.json()
        assert body["status"] == "degraded"
        assert "maxmemory-policy is allkeys-lru, not noeviction" in body["checks"]["redis_settings"]
    warned = [e for e in logs if e["event"] == "redis_settings_unsafe"]
    assert len(warned) == 1 and warned[0]["process"] == "web"


@pytest.mark.django_db
def test_aof_is_asked_for_in_production_only(bad_redis, settings):
    client = connection.get_redis()
    client.config_set("maxmemory-policy", "noeviction")
    assert Client().get("/readyz").json()["status"] == "ok"  # in development: no AOF needed

    # Production's default (DEBUG off); pytest-django turns DEBUG off in any case.
    settings.JOBYARD = {**settings.JOBYARD, "REDIS_REQUIRE_AOF": True}
    body = Client().get("/readyz", secure=True).json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis_settings"].startswith("appendonly is off")

    client.config_set("appendonly", "yes")
    assert Client().get("/readyz", secure=True).json() == {
        "status": "ok", "checks": {"database": "ok", "redis": "ok"}}  # fmt: skip


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_warns_once_at_start(bad_redis, start_worker, tmp_path):
    output = tmp_path / "worker.log"
    # wait=False: it is pinged through the suite's broker, and this one uses bad_redis.
    start_worker(["cleanup"], concurrency=1, pool="solo", output=output, wait=False,
                 env={"REDIS_URL": bad_redis.url})  # fmt: skip
    text = wait_for(lambda: "redis_settings_unsafe" in output.read_text() and output.read_text(),
                    timeout=120, message="the worker's warning")  # fmt: skip
    assert text.count("redis_settings_unsafe") == 1
    assert "allkeys-lru" in text
