"""The API under gunicorn as the Procfile runs it (its config file, threads): what gunicorn
answers by itself, and that health checks answer whatever the API's load."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from project.localdev import free_port
from tests.conftest import wait_for

BASE_DIR = Path(__file__).resolve().parents[2]


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
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "project.wsgi", *procfile_web_options(),
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
             "--threads", str(threads), "--timeout", "60"],
            cwd=BASE_DIR, env=environ, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.listening, timeout=30, message="gunicorn to listen")

    def listening(self) -> bool:
        assert self.process.poll() is None, "gunicorn exited"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
            return True
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


def head(request_target: str = "/api/v1/queues", host: str = "127.0.0.1",
         extra: bytes = b"") -> bytes:  # fmt: skip
    return (f"GET {request_target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n".encode()
            + extra + b"\r\n")  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_what_gunicorn_answers_by_itself_is_as_documented(start_gunicorn):
    server = start_gunicorn(threads=2)
    nul = server.raw(head(extra=b"X-Note: a\x00b\r\n"))
    assert nul.startswith(b"HTTP/1.1 400 Bad Request\r\n"), nul[:200]
    too_long = server.raw(head(extra=b"X-Note: " + b"a" * 8200 + b"\r\n"))
    assert too_long.startswith(b"HTTP/1.1 431 "), too_long[:200]
    too_many = server.raw(head(extra=b"".join(b"X-%d: 1\r\n" % i for i in range(101))))
    assert too_many.startswith(b"HTTP/1.1 431 "), too_many[:200]
    uri = server.raw(head("/api/v1/queues?q=" + "a" * 4100))
    assert uri.startswith(b"HTTP/1.1 414 "), uri[:200]
    # Django's own refusal of a Host comes through as the API's JSON error.
    host = server.raw(head(host="evil.example"))
    assert host.startswith(b"HTTP/1.1 400 ") and b"application/json" in host, host[:300]
    assert b'"code":"disallowed_host"' in host
