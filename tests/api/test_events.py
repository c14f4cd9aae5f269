"""GET /api/v1/events: server-sent events of state changes and progress, resumable, and
bounded in how long one client holds a web thread."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tasks import enqueue
from tests.api.conftest import assert_error
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
BASE_DIR = Path(__file__).resolve().parents[2]


def parse(text: str) -> dict:
    """One SSE message: {id, event, data} or {comment}."""
    message: dict = {}
    for line in text.splitlines():
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "":
            message.setdefault("comments", []).append(value)
        elif field == "data":
            message["data"] = json.loads(value)
        else:
            message[field] = value
    return message


def messages(chunks: Iterator[bytes]) -> Iterator[dict]:
    buffer = ""
    for chunk in chunks:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            yield parse(block)


def collect(response, until: Callable[[list[dict]], bool]) -> list[dict]:
    seen: list[dict] = []
    for message in messages(iter(response.streaming_content)):
        seen.append(message)
        if until(seen):
            return seen
    return seen


def of_job(seen: list[dict], job_id: str) -> list[dict]:
    return [m for m in seen if "data" in m and m["data"].get("jobId") == job_id]


def finished_event(job_id: str) -> Callable[[list[dict]], bool]:
    return lambda seen: any(m.get("event") in ("completed", "failed")
                            for m in of_job(seen, job_id))  # fmt: skip


def test_it_streams_state_changes_and_progress_of_a_running_job(api, worker):
    response = api.get("/api/v1/events", {"queue": "default"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    job = enqueue("t-progress.default", {"steps": 2})
    seen = collect(response, finished_event(job.id))
    response.close()
    mine = of_job(seen, job.id)
    assert [m["event"] for m in mine] == [
        "waiting", "active", "progress", "progress", "progress", "completed"]  # fmt: skip
    progress = [m["data"]["progress"] for m in mine if m["event"] == "progress"]
    assert progress == [50, 100, {"stage": "done", "steps": 2}]
    completed = mine[-1]["data"]
    assert (completed["queue"], completed["returnvalue"]) == ("default", "done")
    assert isinstance(completed["timestamp"], int)
    assert all(m["id"].startswith("default=") for m in mine)
    assert seen[0]["retry"] == "1000"  # how soon the browser reconnects


def test_it_follows_several_queues_in_order_and_fails_are_events_too(api, worker):
    response = api.get("/api/v1/events", {"queue": "default,email"})
    first = enqueue("t-echo.email", {"value": 1})
    bad = enqueue("t-permanent.default", {})
    seen = collect(response, lambda s: finished_event(first.id)(s) and finished_event(bad.id)(s))
    response.close()
    assert of_job(seen, bad.id)[-1]["event"] == "failed"
    assert "PermanentError" in of_job(seen, bad.id)[-1]["data"]["failedReason"]
    assert of_job(seen, first.id)[-1]["data"]["queue"] == "email"
    ids = [m["id"] for m in seen if "id" in m]
    assert all(set(dict(p.split("=") for p in i.split(","))) == {"default", "email"} for i in ids)


def test_it_resumes_after_the_last_event_id_missing_nothing_and_repeating_nothing(api, worker):
    response = api.get("/api/v1/events", {"queue": "default"})
    one = enqueue("t-echo.default", {"value": 1})
    seen = collect(response, finished_event(one.id))
    response.close()
    last_id = seen[-1]["id"]  # the client leaves here
    two = enqueue("t-echo.default", {"value": 2})  # while it is away
    two.wait_until_finished(timeout=30)

    again = api.get("/api/v1/events", {"queue": "default"}, HTTP_LAST_EVENT_ID=last_id)
    resumed = collect(again, finished_event(two.id))
    again.close()
    assert of_job(resumed, one.id) == []
    assert [m["event"] for m in of_job(resumed, two.id)] == ["waiting", "active", "completed"]


def test_it_sends_keepalives_and_ends_after_its_max_lifetime(api, settings):
    settings.JOBYARD_API = {**settings.JOBYARD_API, "SSE_MAX_SECONDS": 1.0,
                            "SSE_KEEPALIVE_SECONDS": 0.2}  # fmt: skip
    started = time.monotonic()
    response = api.get("/api/v1/events")
    seen = collect(response, lambda seen: False)  # reads until the server ends the stream
    assert time.monotonic() - started < 5
    assert sum("keepalive" in m.get("comments", []) for m in seen) >= 3
    end = seen[-1]
    assert end["event"] == "end" and end["data"]["reconnect"] is True
    assert set(dict(p.split("=") for p in end["id"].split(","))) == set(
        django_settings.JOBYARD_QUEUES)  # fmt: skip


def test_it_refuses_an_unknown_queue_and_a_malformed_last_event_id(api):
    assert_error(api.get("/api/v1/events", {"queue": "nope"}), 404, "queue_not_found")
    response = api.get("/api/v1/events", HTTP_LAST_EVENT_ID="yesterday")
    assert_error(response, 400, "invalid_last_event_id")


@pytest.mark.parametrize(
    "cursor",
    [
        "default=99999999999999999999999-0",  # over 64 bits: Redis would refuse it mid-stream
        "default=1700000000000-99999999999999999999999",
        "default=18446744073709551616-0",  # 2**64
        "default=18446744073709551615-0",  # fits, but ages ahead: never sent, silent forever
        f"default={int(time.time() * 1000) + 2 * 86_400_000}-0",
        "default=" + "9" * 5000 + "-0",
        "default=1-0,email=99999999999999999999999-0",
    ],
    ids=["ms-23-digits", "seq-23-digits", "ms-2**64", "ms-2**64-1", "two-days-ahead",
         "5000-digits", "second-queue-bad"],
)  # fmt: skip
def test_it_answers_400_to_a_last_event_id_no_stream_could_have_sent(api, cursor):
    error = assert_error(api.get("/api/v1/events", HTTP_LAST_EVENT_ID=cursor), 400,
                         "invalid_last_event_id")  # fmt: skip
    assert "Last-Event-ID" in error["message"]
    query = api.get("/api/v1/events", {"lastEventId": cursor})
    assert_error(query, 400, "invalid_last_event_id")


def test_a_last_event_id_of_the_past_or_now_is_fine(api, settings):
    settings.JOBYARD_API = {**settings.JOBYARD_API, "SSE_MAX_SECONDS": 0.3}
    now = int(time.time() * 1000)
    for cursor in ("default=0-0", f"default={now}-18446744073709551615,email=1-0"):
        response = api.get("/api/v1/events", {"queue": "default"}, HTTP_LAST_EVENT_ID=cursor)
        assert response.status_code == 200
        seen = collect(response, lambda seen: False)
        assert [m.get("event") for m in seen if "event" in m] == ["end"], seen


# --- under gunicorn: a stream holds a thread only while it is open ---------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def one_thread_server(django_db_setup) -> Iterator[int]:
    """gunicorn with one worker process of one thread: one open stream would block it."""
    port = free_port()
    db = django_settings.DATABASES["default"]
    env = {**os.environ, "JOBYARD_SSE_MAX_SECONDS": "4", "JOBYARD_SSE_KEEPALIVE_SECONDS": "1",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "1", "--timeout", "60"],
        cwd=BASE_DIR, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def up() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        return False

    wait_for(up, timeout=30, message="gunicorn to listen")
    yield port
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(15)


def get(port: int, path: str, token: str, timeout: float) -> tuple[int, float]:
    import http.client

    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    status = conn.getresponse().status
    conn.close()
    return status, time.monotonic() - started


@pytest.mark.slow
def test_a_client_that_leaves_frees_its_thread_and_an_idle_one_is_ended(make_token,
                                                                        one_thread_server):  # fmt: skip
    token = make_token("read")
    port = one_thread_server
    assert get(port, "/api/v1/queues/default/stats", token, 10)[0] == 200

    # A client opens a stream and leaves: the next keepalive write fails and frees the thread.
    leaving = socket.create_connection(("127.0.0.1", port))
    leaving.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n".encode())  # fmt: skip
    assert b"text/event-stream" in leaving.recv(4096)
    leaving.close()
    status, waited = get(port, "/api/v1/queues/default/stats", token, 10)
    assert status == 200 and waited < 3.5  # keepalive 1 s (+ one block), not the 4 s lifetime

    # A client that stays idle is ended after the max lifetime (4 s), freeing the thread.
    idle = socket.create_connection(("127.0.0.1", port))
    idle.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())  # fmt: skip
    assert b"text/event-stream" in idle.recv(4096)
    status, waited = get(port, "/api/v1/queues/default/stats", token, 15)
    assert status == 200 and 1.5 < waited < 8
    idle.close()
