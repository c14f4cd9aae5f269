"""With PostgreSQL really stopped, the API under gunicorn keeps answering its reads from
Redis (tokens checked before the outage are cached: tasks/api/tokens.py); what cannot be
answered is a JSON 503; and once PostgreSQL is back a revocation takes effect at once."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from project.localdev import PostgresServer, free_port
from tasks import enqueue

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, migrated: stopping it disturbs no other test."""
    # Not pytest's tmp_path: that is private to root, and PostgreSQL runs as `postgres`.
    folder = Path(tempfile.mkdtemp(dir=os.environ["JOBYARD_TEST_TMP"]))
    folder.chmod(0o755)  # the postgres user must reach its data folder inside
    server = PostgresServer(free_port(), folder / "postgres", durable=False)
    server.start()
    try:
        manage("migrate", "--noinput", "-v", "0", database=server.url())
        yield server
    finally:
        server.stop()


def manage(*args: str, database: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR,
                            env={**os.environ, "DATABASE_URL": database},
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def call(port: int, method: str, path: str, token: str, body: dict | None = None
         ) -> tuple[int, dict]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=json.dumps(body or {}) if method == "POST" else None,
                 headers={"Authorization": f"Bearer {token}",
                          "Content-Type": "application/json"})  # fmt: skip
    response = conn.getresponse()
    assert response.getheader("Content-Type") == "application/json", path
    body = json.loads(response.read())
    conn.close()
    return response.status, body


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_reads_answer_from_redis_with_postgresql_stopped(own_postgres, start_gunicorn):
    url = own_postgres.url()
    writer = manage("api_token", "create", "ops", "--scope", "write", database=url)
    late = manage("api_token", "create", "late", "--scope", "read", database=url)
    # Cached checks trusted for 1 s only: past it, PostgreSQL is asked (and is down).
    server = start_gunicorn(env={"DATABASE_URL": url, "JOBYARD_API_TOKEN_CACHE_SECONDS": "1"})
    job = enqueue("t-echo.catalog", {"value": 7}, delay=600_000)
    reads = ["/api/v1/queues/catalog/stats", "/api/v1/queues", "/api/admin/jobs/status",
             f"/api/v1/jobs/catalog/{job.id}", "/api/v1/workers", "/api/v1/job-types"]  # fmt: skip
    assert call(server.port, "GET", reads[0], writer)[0] == 200

    own_postgres.stop()
    time.sleep(1.5)
    for path in reads:
        status, body = call(server.port, "GET", path, writer)
        assert status == 200, (path, body)
    assert call(server.port, "GET", reads[3], writer)[1]["data"] == {"value": 7}
    assert call(server.port, "GET", reads[0], writer)[1]["delayed"] == 1
    # Writes that need Redis alone work too.
    assert call(server.port, "POST", "/api/v1/queues/catalog/pause", writer)[0] == 200
    assert call(server.port, "POST", "/api/v1/queues/catalog/resume", writer)[0] == 200
    trigger = {"jobType": "t-echo.catalog", "value": 8, "options": {"delay": 600_000}}
    status, body = call(server.port, "POST", "/api/admin/jobs/trigger", writer, trigger)
    assert (status, body["state"]) == (202, "delayed"), body
    # A token not checked before the outage cannot be checked now: a JSON 503.
    status, body = call(server.port, "GET", reads[0], late)
    assert (status, body["error"]["code"]) == (503, "database_unavailable")
    # The schedules live in PostgreSQL: the queue's detail, which lists them, is a 503.
    status, body = call(server.port, "GET", "/api/v1/queues/catalog", writer)
    assert (status, body["error"]["code"]) == (503, "database_unavailable")
    status, ready = call(server.port, "GET", "/readyz", writer)
    assert status == 503 and ready["checks"]["redis"] == "ok", ready
    assert call(server.port, "GET", "/healthz", writer) == (200, {"status": "ok"})

    # PostgreSQL back: revoking through the app takes effect at once, cache or not.
    own_postgres.start()
    assert call(server.port, "GET", reads[0], late)[0] == 200
    manage("api_token", "revoke", "ops", database=url)
    status, body = call(server.port, "GET", reads[0], writer)
    assert (status, body["error"]["code"]) == (401, "token_revoked")
