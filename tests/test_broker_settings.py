"""One Redis configuration for every client: the broker URL stays a Redis URL (redis://,
rediss://, sentinel://) naming Jobyard's transport, and TLS and Sentinel's password, database
and TLS reach the broker, the registry and the result backend alike.

Each case imports project.settings in a child process with its own environment (settings
are read once per process) and reports what Celery, kombu, Flower and the registry would
build from them, without connecting anywhere.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

pytestmark = pytest.mark.pure
BASE_DIR = Path(__file__).resolve().parent.parent

PROBE = """
import json
from flower.utils.broker import Broker
from project.celery import app
from tasks.connection import master_options

conf = app.conf
conn = app.connection()
flower = Broker(conn.as_uri(include_password=True), broker_options=conf.broker_transport_options,
                broker_use_ssl=conf.broker_use_ssl)
kind = lambda obj: f"{type(obj).__module__}.{type(obj).__qualname__}"
print(json.dumps({
    "broker_url": conf.broker_url,
    "broker_transport": conf.broker_transport,
    "broker_use_ssl": conf.broker_use_ssl,
    "broker_transport_options": conf.broker_transport_options,
    "redis_backend_use_ssl": conf.redis_backend_use_ssl,
    "result_backend_transport_options": conf.result_backend_transport_options,
    "transport": kind(conn.transport),
    "channel": f"{conn.transport.Channel.__module__}.{conn.transport.Channel.__qualname__}",
    "uri": conn.as_uri(),
    "uri_with_password": conn.as_uri(include_password=True),
    "password": conn.password,
    "virtual_host": conn.virtual_host,
    "ssl": conn.ssl,
    "flower": type(flower).__name__,
    "master_options": master_options(),
    "result_backend": conf.result_backend,
    "backend": kind(app.backend),
    "backend_params": {k: v for k, v in app.backend.connparams.items()
                       if v is not None and (k in ("db", "password", "username", "path")
                                             or k.startswith("ssl"))},
    "backend_connection": app.backend.connparams.get("connection_class", type).__name__,
}, default=repr))
"""


def settings_with(**env: str) -> dict:
    """What the settings make of `env` (every REDIS_ variable of this process dropped)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**base, "DJANGO_SETTINGS_MODULE": "project.settings", **env},
        cwd=BASE_DIR, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def refused(**env: str) -> str:
    """The start-up error `env` gives (it must give one)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    result = subprocess.run(
        [sys.executable, "-c", "import project.settings"],
        env={**base, **env}, cwd=BASE_DIR, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0, "accepted"
    assert "Invalid environment" in result.stderr
    return result.stderr


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, str]:
    """Three files where the settings expect PEM files (their content is not read here)."""
    files = {}
    for name in ("ca", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        path.write_text("-----BEGIN PLACEHOLDER-----\n")
        files[name] = str(path)
    return files


def test_the_broker_url_is_a_redis_url_that_names_jobyards_transport():
    got = settings_with()
    assert got["broker_url"] == "redis://127.0.0.1:63790/0"
    assert got["broker_transport"] is None  # no import path in place of a scheme
    assert got["uri_with_password"] == "redis://127.0.0.1:63790/0"
    assert got["transport"] == "tasks.worker.transport.Transport"
    assert got["flower"] == "Redis"
    assert got["broker_use_ssl"] is None and got["ssl"] is None
    assert got["result_backend"] == "tasks.results:JobyardBackend+redis://127.0.0.1:63790/0"
    assert got["backend"] == "tasks.results.JobyardBackend"


def test_a_password_and_database_reach_the_broker_uri():
    got = settings_with(REDIS_URL="redis://:s%40cret@redis.internal:6380/4")
    assert got["uri"] == "redis://:**@redis.internal:6380/4"
    assert got["uri_with_password"] == "redis://:s%40cret@redis.internal:6380/4"
    assert got["password"] == "s@cret" and got["virtual_host"] == "4"
    assert got["backend_params"] == {"db": 4, "password": "s@cret"}


def test_tls_options_reach_the_broker_and_the_result_backend(pem_files):
    got = settings_with(
        REDIS_URL="rediss://:pw@redis.internal:6380/2",
        REDIS_TLS_CA_FILE=pem_files["ca"],
        REDIS_TLS_CERT_FILE=pem_files["cert"],
        REDIS_TLS_KEY_FILE=pem_files["key"],
    )
    expected = {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": pem_files["ca"],
        "ssl_certfile": pem_files["cert"],
        "ssl_keyfile": pem_files["key"],
    }
    assert got["broker_use_ssl"] == expected
    assert got["redis_backend_use_ssl"] == expected
    assert got["ssl"] == expected  # what kombu's connection hands to redis-py
    assert got["uri"] == "rediss://:**@redis.internal:6380/2"
    assert got["transport"] == "tasks.worker.transport.Transport"
    assert got["flower"] == "RedisSsl"
    # The result backend's own connection: TLS with the same files.
    assert got["backend_params"] == {"db": 2, "password": "pw", **expected}
    assert got["backend_connection"] == "SSLConnection"


def test_redis_tls_turns_tls_on_with_a_redis_url_or_with_the_parts():
    with_url = settings_with(REDIS_URL="redis://redis.internal:6379/0", REDIS_TLS="true")
    assert with_url["broker_url"] == "rediss://redis.internal:6379/0"
    assert with_url["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    with_parts = settings_with(REDIS_HOST="redis.internal", REDIS_PORT="6380", REDIS_TLS="true")
    assert with_parts["broker_url"] == "rediss://redis.internal:6380/0"
    assert with_parts["redis_backend_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_certificate_checks_can_be_turned_off_for_self_signed_servers():
    got = settings_with(REDIS_URL="rediss://redis.internal:6379/0", REDIS_TLS_CERT_REQS="none")
    assert got["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_NONE, "ssl_check_hostname": False}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REDIS_TLS_CA_FILE": "{ca}"}, "TLS is off"),
        (
            {"REDIS_URL": "rediss://h:1/0", "REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"},
            "no such file",
        ),
        (
            {"REDIS_URL": "rediss://h:1/0", "REDIS_TLS_KEY_FILE": "{key}"},
            "without REDIS_TLS_CERT_FILE",
        ),
        ({"REDIS_URL": "rediss://h:1/0?ssl_cert_reqs=none"}, "no query string"),
        ({"REDIS_URL": "redis://h:1/x"}, "must be a number"),
        ({"REDIS_URL": "unix:///run/redis.sock", "REDIS_SENTINELS": "h:26379"}, "unix://"),
        ({"REDIS_TLS_CERT_REQS": "sometimes"}, "REDIS_TLS_CERT_REQS"),
    ],
)
def test_it_refuses_tls_and_url_settings_that_cannot_work(pem_files, env, named):
    stderr = refused(**{k: v.format(**pem_files) for k, v in env.items()})
    assert named in stderr


def test_sentinel_keeps_the_password_and_database_for_broker_registry_and_results():
    got = settings_with(
        REDIS_SENTINELS="10.0.0.1:26379,10.0.0.2:26380",
        REDIS_SENTINEL_MASTER="jobs",
        REDIS_PASSWORD="p@ss:w/rd",
        REDIS_DB="3",
    )
    quoted = "p%40ss%3Aw%2Frd"
    assert got["broker_url"] == (
        f"sentinel://:{quoted}@10.0.0.1:26379/3;sentinel://:{quoted}@10.0.0.2:26380/3"
    )
    assert got["transport"] == "tasks.worker.transport.SentinelTransport"
    assert got["channel"] == "tasks.worker.transport.SentinelChannel"
    assert got["password"] == "p@ss:w/rd" and got["virtual_host"] == "3"
    sentinel_options = {
        "master_name": "jobs",
        "sentinel_kwargs": {
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
            "password": "p@ss:w/rd",
        },
    }
    assert got["broker_transport_options"] | sentinel_options == got["broker_transport_options"]
    assert got["result_backend_transport_options"] == sentinel_options
    assert got["result_backend"] == "tasks.results:JobyardSentinelBackend+" + got["broker_url"]
    assert got["backend"] == "tasks.results.JobyardSentinelBackend"
    assert got["backend_params"] == {"db": 3, "password": "p@ss:w/rd"}
    # The registry's client logs in to the master as the broker does, in the same database.
    assert got["master_options"] == {"password": "p@ss:w/rd", "db": 3}
    assert got["flower"] == "RedisSentinel"
    assert got["uri"] == "sentinel://:**@10.0.0.1:26379/3"


def test_sentinel_takes_credentials_database_and_tls_from_redis_url(pem_files):
    got = settings_with(
        REDIS_SENTINELS="10.0.0.1:26379",
        REDIS_URL="rediss://jobs:pw@ignored.example:6379/5",
        REDIS_TLS_CA_FILE=pem_files["ca"],
        REDIS_SENTINEL_PASSWORD="",  # sentinels without a password
    )
    tls = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": pem_files["ca"]}
    assert got["broker_url"] == "sentinel://jobs:pw@10.0.0.1:26379/5"
    assert got["broker_use_ssl"] == tls and got["redis_backend_use_ssl"] == tls
    assert got["ssl"] == tls  # kombu's Sentinel channel: SentinelManagedSSLConnection
    kwargs = got["broker_transport_options"]["sentinel_kwargs"]
    assert kwargs == {"socket_timeout": 2, "socket_connect_timeout": 2, "ssl": True, **tls}
    assert got["master_options"] == {
        "username": "jobs",
        "password": "pw",
        "db": 5,
        "ssl": True,
        **tls,
    }
    assert got["backend_params"] == {"db": 5, "password": "pw", "username": "jobs", **tls}
    assert got["backend_connection"] == "SentinelManagedSSLConnection"


def test_sentinels_can_speak_plain_while_the_master_speaks_tls():
    got = settings_with(
        REDIS_SENTINELS="10.0.0.1:26379",
        REDIS_URL="rediss://:pw@ignored.example:6379/0",
        REDIS_SENTINEL_TLS="false",
    )
    assert "ssl" not in got["broker_transport_options"]["sentinel_kwargs"]
    assert got["master_options"]["ssl"] is True


def test_a_unix_socket_becomes_kombus_socket_url():
    got = settings_with(REDIS_URL="unix:///run/redis/redis.sock?db=2")
    assert got["broker_url"] == "redis+socket:///run/redis/redis.sock?virtual_host=2"
    assert got["transport"] == "tasks.worker.transport.Transport"
    assert got["backend_params"] == {"db": 2, "path": "/run/redis/redis.sock"}


def test_a_broker_global_keyprefix_is_refused_when_a_channel_opens():
    import kombu

    connection = kombu.Connection(
        "redis://127.0.0.1:1/0", transport_options={"global_keyprefix": "app1:"}
    )
    with pytest.raises(ImproperlyConfigured, match="global_keyprefix is not supported"):
        connection.default_channel  # noqa: B018
