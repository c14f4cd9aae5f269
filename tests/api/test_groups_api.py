"""A queue's groups over HTTP: counts with a read token, pause/resume and limits with a
write token, bad input named, and the enqueue options (group, dedupe, debounce) on trigger."""

from __future__ import annotations

import pytest

from tasks import Queue, enqueue
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "catalog"


def test_a_read_token_lists_the_groups_with_their_counts(reader):
    for group, n in (("tenant-1", 3), ("tenant-2", 1)):
        for _ in range(n):
            enqueue("t-echo.catalog", {}, group=group)
    Queue(QUEUE).set_group_limits(concurrency=2)
    response = reader.get(f"/api/v1/queues/{QUEUE}/groups")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "queue": QUEUE,
        "defaults": {"concurrency": 2, "rateLimit": None},
        "groups": [
            {"group": "tenant-1", "waiting": 3, "active": 0, "paused": False,
             "concurrency": None, "rateLimit": None},
            {"group": "tenant-2", "waiting": 1, "active": 0, "paused": False,
             "concurrency": None, "rateLimit": None},
        ],
    }  # fmt: skip
    assert_error(reader.post_json(f"/api/v1/queues/{QUEUE}/groups/tenant-1/pause"), 403)


def test_pause_resume_and_limits_with_a_write_token(api):
    base = f"/api/v1/queues/{QUEUE}/groups"
    response = api.post_json(f"{base}/tenant-1/pause")
    assert response.json() == {"queue": QUEUE, "group": "tenant-1", "paused": True}
    assert Queue(QUEUE).groups(["tenant-1"])["groups"][0]["paused"] is True
    body = {"concurrency": 1, "rateLimit": {"max": 10, "duration": 1000}}
    response = api.post_json(f"{base}/tenant-1/limits", body)
    assert response.status_code == 200, response.content
    (row,) = response.json()["groups"]
    assert (row["concurrency"], row["rateLimit"]) == (1, {"max": 10, "duration": 1000})
    response = api.post_json(f"{base}/limits", {"concurrency": 3})
    assert response.json()["defaults"] == {"concurrency": 3, "rateLimit": None}
    assert api.post_json(f"{base}/tenant-1/resume").json()["paused"] is False
    assert Queue(QUEUE).groups(["tenant-1"])["groups"][0]["paused"] is False


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("post", "/api/v1/queues/nope/groups/a/pause", None, 404, None),
        ("get", "/api/v1/queues/nope/groups", None, 404, None),
        ("post", f"/api/v1/queues/{QUEUE}/groups/a%20b/pause", None, 422, "group"),
        ("post", f"/api/v1/queues/{QUEUE}/groups/a/limits", {"concurrency": -1}, 422,
         "concurrency"),
        ("post", f"/api/v1/queues/{QUEUE}/groups/limits", {"concurrency": "2"}, 422,
         "concurrency"),
        ("post", f"/api/v1/queues/{QUEUE}/groups/limits", {"rateLimit": {"max": 1}}, 422,
         "rateLimit.duration"),
        ("post", f"/api/v1/queues/{QUEUE}/groups/limits", {"other": 1}, 422, "other"),
    ],
)  # fmt: skip
def test_bad_input_is_a_4xx_naming_the_field(api, method, path, body, status, field):
    response = api.get(path) if method == "get" else api.post_json(path, body)
    error = assert_error(response, status)
    if field:
        assert field in {f["field"] for f in error["fields"]}, error
    assert Queue(QUEUE).groups()["defaults"] == {"concurrency": None, "rate_limit": None}


def test_trigger_takes_group_dedupe_and_debounce(api):
    def trigger(options):
        return api.post_json("/api/admin/jobs/trigger",
                             {"jobType": "t-echo.catalog", "options": options})  # fmt: skip

    response = trigger({"group": "tenant-9"})
    assert response.status_code == 202, response.content
    assert Queue(QUEUE).groups(["tenant-9"])["groups"][0]["waiting"] == 1
    first = trigger({"dedupe": {"key": "k", "ttl": 60_000}})
    again = trigger({"dedupe": {"key": "k", "ttl": 60_000}})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["jobId"] == first.json()["jobId"] and again.json()["created"] is False
    debounced = trigger({"debounce": {"key": "d", "delay": 60_000}})
    assert debounced.json()["state"] == "delayed"
    error = assert_error(trigger({"debounce": {"key": "d", "delay": 0}}), 422)
    assert error["fields"][0]["field"].startswith("options.debounce")
    error = assert_error(trigger({"group": "a b"}), 422)
    assert error["fields"][0]["field"] == "options.group"
