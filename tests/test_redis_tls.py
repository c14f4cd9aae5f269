"""TLS reaches every Redis connection: the worker's broker and registry, this process's
registry (enqueue, results, events), Celery's control commands, a Redis result backend,
kombu and Flower, against a server that speaks TLS only and checks client certificates."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import kombu
import pytest
import redis
from flower.utils.broker import Broker

from tasks import enqueue, get_job
from tasks.events import read_events
from tasks.worker.transport import Channel
from tests.redis_servers import (
    TlsRedis,
    celery_app_for,
    make_certs,
    registry_on,
    settings_for,
)

QUEUE = "webhooks"  # no shared worker consumes it


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    server = TlsRedis(tmp_path / "redis", make_certs(tmp_path / "certs"))
    yield server
    server.stop()


def test_the_server_takes_tls_with_a_client_certificate_only(tls_redis):
    assert tls_redis.client().config_get("port") == {"port": "0"}  # no plain port at all
    with socket.create_connection(("127.0.0.1", tls_redis.port), timeout=2) as plain:
        plain.sendall(b"PING\r\n")
        try:
            reply = plain.recv(64)
        except OSError:  # reset, or no answer at all
            reply = b""
    assert not reply.startswith(b"+PONG")
    without_cert = tls_redis.client(ssl_certfile=None, ssl_keyfile=None)
    with pytest.raises(redis.ConnectionError):
        without_cert.ping()


@pytest.mark.slow
def test_jobs_results_events_and_control_go_over_tls(tls_redis, start_worker, tmp_path):
    certs = tls_redis.certs
    env = {
        "REDIS_URL": f"rediss://127.0.0.1:{tls_redis.port}/0",
        "REDIS_TLS_CA_FILE": str(certs["ca.pem"]),
        "REDIS_TLS_CERT_FILE": str(certs["client.pem"]),
        "REDIS_TLS_KEY_FILE": str(certs["client.key"]),
    }
    values = settings_for(env)
    assert values["CELERY_BROKER_URL"].startswith("rediss://")
    worker = start_worker([QUEUE], env=env, wait=False, output=tmp_path / "worker.log")

    with registry_on(values):
        job = enqueue(f"t-echo.{QUEUE}", {"value": {"over": "tls"}})
        assert job.wait_until_finished(timeout=60) == {"over": "tls"}
        assert get_job(QUEUE, job.id).returnvalue == {"over": "tls"}
        assert get_job(QUEUE, job.id).worker.startswith(worker.name)
        events = [e.event for e in read_events({QUEUE: "0"}) if e.job_id == job.id]
        assert events[0] == "waiting" and {"active", "completed"} <= set(events)

    # Celery's control commands over the TLS broker: the worker answers a ping.
    control = celery_app_for(values).control
    assert control.ping([worker.name], timeout=5) == [{worker.name: {"ok": "pong"}}]

    # The project's result backend, from the same settings: Celery's results over TLS, and
    # a job's result read through the registry.
    results = celery_app_for(values)
    assert type(results.backend).__name__ == "JobyardBackend"
    task_id = str(uuid.uuid4())
    results.backend.store_result(task_id, {"answer": 42}, "SUCCESS")
    assert results.AsyncResult(task_id).get(timeout=10) == {"answer": 42}
    with registry_on(values):
        assert results.AsyncResult(job.id).get(timeout=10) == {"over": "tls"}

    # The URL alone, as Flower's broker page builds its connection: kombu and Flower both
    # reach the broker over TLS, kombu with Jobyard's channel.
    with kombu.Connection(
        values["CELERY_BROKER_URL"], ssl=values["CELERY_BROKER_USE_SSL"],
        transport_options=values["CELERY_BROKER_TRANSPORT_OPTIONS"],
    ) as conn:  # fmt: skip
        assert isinstance(conn.default_channel, Channel)
        assert conn.default_channel.client.ping()
        uri = conn.as_uri(include_password=True)
    assert uri.startswith("rediss://")
    flower = Broker(uri, broker_options=values["CELERY_BROKER_TRANSPORT_OPTIONS"],
                    broker_use_ssl=values["CELERY_BROKER_USE_SSL"])  # fmt: skip
    assert asyncio.run(flower.queues([QUEUE])) == [{"name": QUEUE, "messages": 0}]
