"""Fixtures of the HTTP API tests: clients holding a write token, a read token, none; and
gunicorn as the Procfile runs it."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from project.localdev import free_port
from tasks.api.models import ApiToken
from tests.conftest import wait_for

BASE_DIR = Path(__file__).resolve().parents[2]


class ApiClient(Client):
    """Django's test client with JSON helpers and, optionally, a bearer token."""

    def __init__(self, token: str | None = None, **defaults: Any) -> None:
        if token:
            defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        super().__init__(**defaults)

    def post_json(self, path: str, body: Any = None, **extra: Any):
        data = b"" if body is None else json.dumps(body)
        return self.post(path, data, content_type="application/json", **extra)


@pytest.fixture
def make_token(db):
    def make(scope: str = "write", name: str | None = None) -> str:
        _, raw = ApiToken.issue(name or f"test-{uuid.uuid4().hex[:8]}", scope)
        return raw

    return make


@pytest.fixture
def api(make_token) -> ApiClient:
    """A client with a write token."""
    return ApiClient(make_token("write"))


@pytest.fixture
def reader(make_token) -> ApiClient:
    """A client with a read token."""
    return ApiClient(make_token("read"))


@pytest.fixture
def anonymous() -> ApiClient:
    return ApiClient()


def assert_error(response, status: int, code: str | None = None) -> dict[str, Any]:
    """A JSON error of the documented shape; returns its `error` object."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    if code:
        assert error["code"] == code, error
    return error


# --- gunicorn as the Procfile runs it ----------------------------------------------------


def procfile_web_options() -> list[str]:
    """The Procfile's `web` options that are not bind, workers or threads (set here)."""
    line = next(line.split(": ", 1)[1] for line in (BASE_DIR / "Procfile").read_text()
                .splitlines() if line.startswith("web: "))  # fmt: skip
    words = shlex.split(line)
    assert words[:2] == ["gunicorn", "project.wsgi"]
    assert words[2:4] == ["-c", "python:project.gunicorn_config"]
    return words[2:4]


class Gunicorn:
    def __init__(self, workers: int, threads: int, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        db = django_settings.DATABASES["default"]
        environ = {
            **os.environ,
            # The test database pytest-django made: tokens the test commits are seen.
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "WEB_THREADS": str(threads),
            # A stream whose client left ends at the next keepalive: gunicorn stops soon.
            "JOBYARD_SSE_KEEPALIVE_SECONDS": "1",
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "project.wsgi", *procfile_web_options(),
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
             "--threads", str(threads), "--timeout", "60"],
            cwd=BASE_DIR, env=environ, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.answering, timeout=60, message="gunicorn to answer /healthz")

    def answering(self) -> bool:
        """A worker answers (the master listens before its workers have booted)."""
        assert self.process.poll() is None, "gunicorn exited"
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def raw(self, request: bytes, timeout: float = 10) -> bytes:
        """`request` as sent, the whole answer as read until gunicorn closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


@pytest.fixture
def start_gunicorn(django_db_setup) -> Iterator:
    started: list[Gunicorn] = []

    def start(workers: int = 1, threads: int = 4, env: dict[str, str] | None = None):
        server = Gunicorn(workers, threads, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
