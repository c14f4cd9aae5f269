"""/healthz answers while the process lives; /readyz names the dependency that is down."""

import pytest
from django.test import Client

from project.localdev import RedisServer, free_port
from tasks import connection


@pytest.fixture
def private_redis(tmp_path, settings):
    """A Redis of this test's own, so stopping it disturbs no other test."""
    server = RedisServer(free_port(), tmp_path / "redis")
    server.start()
    settings.REDIS_URL = server.url
    connection._client_for_pid.cache_clear()
    yield server
    server.stop()
    connection._client_for_pid.cache_clear()


@pytest.mark.django_db
def test_it_answers_healthz():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_reports_redis_down_then_back(private_redis):
    client = Client()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}

    private_redis.stop()
    down = client.get("/readyz")
    assert down.status_code == 503
    body = down.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error:")
    assert body["error"]["code"] == "not_ready"
    assert "redis" in body["error"]["message"]

    private_redis.start()
    back = client.get("/readyz")
    assert back.status_code == 200, back.json()
