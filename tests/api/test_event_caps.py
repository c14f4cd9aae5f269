"""Open event streams are capped per web process (503) and per token or user (429), each
refusal JSON with a Retry-After, so that streams never take every web thread; a stream's
place is given back when it ends, when the client leaves, or when it is never read.
(Under gunicorn, with health checks: tests/api/test_web_server.py.)"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tasks import keys
from tasks.api import streams
from tasks.connection import get_redis
from tests.api.conftest import ApiClient, assert_error

#: django_db(transaction=True) below: closing a response sends request_finished, which
#: closes a database connection that is inside a test's transaction.
EVENTS = "/api/v1/events"


@pytest.fixture
def caps(settings):
    def set_caps(per_process: int, per_token: int, max_seconds: float = 120.0) -> None:
        settings.JOBYARD_API = {**settings.JOBYARD_API, "SSE_MAX_STREAMS": per_process,
                                "SSE_MAX_STREAMS_PER_TOKEN": per_token,
                                "SSE_MAX_SECONDS": max_seconds}  # fmt: skip

    return set_caps


@pytest.fixture
def opened():
    """Responses a test opens, closed after it whatever happens."""
    responses: list = []
    yield responses
    for response in responses:
        response.close()


def open_stream(client: Client, opened: list, **extra):
    response = client.get(EVENTS, **extra)
    opened.append(response)
    return response


@pytest.mark.django_db(transaction=True)
def test_a_token_over_its_cap_gets_429_with_retry_after(make_token, caps, opened):
    caps(per_process=10, per_token=2, max_seconds=120)
    first = ApiClient(make_token("read"))
    assert open_stream(first, opened).status_code == 200
    assert open_stream(first, opened).status_code == 200
    refused = open_stream(first, opened)
    error = assert_error(refused, 429, "too_many_streams")
    assert "JOBYARD_SSE_MAX_STREAMS_PER_TOKEN" in error["message"]
    assert 100 <= int(refused["Retry-After"]) <= 120  # when the oldest one ends
    # Another token is not held back by this one's streams.
    assert open_stream(ApiClient(make_token("read")), opened).status_code == 200
    # Closing a stream gives its place back.
    opened[0].close()
    again = open_stream(first, opened)
    assert again.status_code == 200, (again.content, streams.open_in_process())


@pytest.mark.django_db(transaction=True)
def test_a_full_process_answers_503_with_retry_after(make_token, caps, opened):
    caps(per_process=2, per_token=10, max_seconds=60)
    for _ in range(2):
        assert open_stream(ApiClient(make_token("read")), opened).status_code == 200
    assert streams.open_in_process() == 2
    refused = open_stream(ApiClient(make_token("read")), opened)
    error = assert_error(refused, 503, "stream_capacity")
    assert "JOBYARD_SSE_MAX_STREAMS" in error["message"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Everything else is still answered: the cap is on streams only.
    assert ApiClient(make_token("read")).get("/api/v1/queues").status_code == 200
    assert Client().get("/healthz").status_code == 200
    opened[0].close()
    assert streams.open_in_process() == 1
    assert open_stream(ApiClient(make_token("read")), opened).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_staff_user_is_capped_like_a_token(caps, opened):
    caps(per_process=10, per_token=1)
    user = User.objects.create_user("op", password="pw-for-tests", is_staff=True)
    client = Client()
    client.force_login(user)
    assert open_stream(client, opened).status_code == 200
    assert_error(open_stream(client, opened), 429, "too_many_streams")


@pytest.mark.django_db(transaction=True)
def test_a_stream_that_ends_or_is_never_read_gives_its_place_back(make_token, caps, opened):
    caps(per_process=1, per_token=1, max_seconds=0.3)
    client = ApiClient(make_token("read"))
    ended = open_stream(client, opened)
    b"".join(ended.streaming_content)  # read to its `end` event
    assert streams.open_in_process() == 0
    assert [k for k in get_redis().scan_iter(keys.api_streams("*")) if get_redis().zcard(k)] == []
    unread = open_stream(client, opened)
    assert unread.status_code == 200
    unread.close()  # what the server does when the client left before the first byte
    assert streams.open_in_process() == 0
    assert open_stream(client, opened).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_refused_or_failed_open_leaves_nothing_held(make_token, caps, opened):
    caps(per_process=1, per_token=5)
    client = ApiClient(make_token("read"))
    assert_error(client.get(EVENTS, {"queue": "nope"}), 404, "queue_not_found")
    assert_error(client.get(EVENTS, HTTP_LAST_EVENT_ID="x"), 400, "invalid_last_event_id")
    assert streams.open_in_process() == 0
    assert open_stream(client, opened).status_code == 200
    assert_error(open_stream(client, opened), 503, "stream_capacity")
    opened[0].close()
    # The 503 took no lease in Redis: the token has room for its cap.
    caps(per_process=5, per_token=5)
    for _ in range(5):
        assert open_stream(client, opened).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_lease_of_a_process_that_died_runs_out(make_token, caps, opened, monkeypatch):
    caps(per_process=10, per_token=1)
    client = ApiClient(make_token("read"))
    assert open_stream(client, opened).status_code == 200
    opened.pop()  # never closed: as if its process was killed
    streams._open.clear()
    assert_error(open_stream(client, opened), 429, "too_many_streams")
    later = time.time() + streams.LEASE_SECONDS + 1
    monkeypatch.setattr(streams.time, "time", lambda: later)
    assert open_stream(client, opened).status_code == 200


@pytest.mark.pure
def test_the_default_cap_leaves_threads_for_everything_else():
    from project.settings import default_max_streams

    assert [default_max_streams(t) for t in (1, 2, 3, 4, 8, 16)] == [0, 1, 1, 2, 6, 14]
