"""The API under gunicorn as the Procfile runs it (its config file, threads): what gunicorn
answers by itself, and that health checks answer whatever the API's load."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest


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


# --- event streams never starve the health checks ----------------------------------------


class Stream:
    """GET /api/v1/events on a socket of its own, kept open once its head is read."""

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Bearer {token}\r\n\r\n".encode())  # fmt: skip
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = self.sock.recv(4096)
            assert chunk, f"closed before its head: {answer!r}"
            answer += chunk
        head, _, self.body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}

    def error(self) -> dict:
        """The JSON error of a refused stream (gunicorn closes after it: chunked or not)."""
        while not self.body.rstrip().endswith((b"}", b"0")):
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.body += chunk
        text = self.body.decode()
        if self.headers.get("transfer-encoding") == "chunked":
            text = text.split("\r\n", 1)[1].rsplit("\r\n0", 1)[0].strip()
        return json.loads(text)["error"]

    def close(self) -> None:
        self.sock.close()


def timed_get(port: int, path: str, token: str | None = None) -> tuple[int, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    status = conn.getresponse().status
    conn.close()
    return status, time.monotonic() - started


@pytest.fixture
def streams_opened() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


@pytest.mark.django_db(transaction=True)
def test_sixteen_streams_on_the_procfile_web_leave_health_checks_answered(
    start_gunicorn, make_token, streams_opened
):
    """The issue's case: 2 processes x 8 threads (the Procfile's defaults) and 16 streams
    asked for. Each process opens 6 (WEB_THREADS - 2) and answers the others 503, so the
    threads left answer /healthz and /readyz at once, and the API besides."""
    server = start_gunicorn(workers=2, threads=8,
                            env={"JOBYARD_SSE_MAX_STREAMS_PER_TOKEN": "100"})  # fmt: skip
    token = make_token("read")
    for _ in range(16):
        streams_opened.append(Stream(server.port, token))
    statuses = sorted(s.status for s in streams_opened)
    opened = statuses.count(200)
    assert set(statuses) <= {200, 503} and 6 <= opened <= 12, statuses
    for refused in (s for s in streams_opened if s.status == 503):
        assert refused.error()["code"] == "stream_capacity"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["content-type"] == "application/json"

    waits = []
    for _ in range(10):
        for path in ("/healthz", "/readyz"):
            status, waited = timed_get(server.port, path)
            assert status == 200
            waits.append(waited)
    assert max(waits) < 1.0, waits
    status, waited = timed_get(server.port, "/api/v1/queues/default/stats", token)
    assert status == 200 and waited < 1.0


@pytest.mark.django_db(transaction=True)
def test_a_tokens_cap_holds_across_web_processes(start_gunicorn, make_token, streams_opened):
    server = start_gunicorn(workers=2, threads=8,
                            env={"JOBYARD_SSE_MAX_STREAMS_PER_TOKEN": "3"})  # fmt: skip
    token, other = make_token("read"), make_token("read")
    for _ in range(5):
        streams_opened.append(Stream(server.port, token))
    assert sorted(s.status for s in streams_opened) == [200, 200, 200, 429, 429]
    refused = next(s for s in streams_opened if s.status == 429)
    assert refused.error()["code"] == "too_many_streams"
    assert int(refused.headers["retry-after"]) >= 1
    streams_opened.append(Stream(server.port, other))
    assert streams_opened[-1].status == 200
