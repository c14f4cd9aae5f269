"""POST /api/admin/jobs/trigger: validated against the job type's declared parameters."""

from __future__ import annotations

import json

import pytest

from tasks import Queue, get_job
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)
TRIGGER = "/api/admin/jobs/trigger"


def test_it_enqueues_a_job_that_a_worker_runs(api, worker):
    response = api.post_json(TRIGGER, {"jobType": "t-typed", "count": 3, "label": "api"})
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"jobId", "queue", "state", "created"}
    assert (body["queue"], body["state"], body["created"]) == ("default", "waiting", True)
    job = get_job("default", body["jobId"])
    assert job.wait_until_finished(timeout=30) == {"count": 3, "label": "api", "ratio": 0.5}


def test_it_accepts_camel_case_parameters_and_options(api):
    response = api.post_json(TRIGGER, {
        "jobType": "t-flaky.catalog", "key": "k", "failTimes": 1,
        "options": {"delay": 60_000, "priority": 1, "jobId": "camel-1", "attempts": 4,
                    "backoff": {"type": "fixed", "delay": 10}, "timeout": 5000,
                    "removeOnComplete": True, "removeOnFail": {"age": 60, "count": 5}},
    })  # fmt: skip
    assert response.status_code == 202, response.content
    assert response.json() == {"jobId": "camel-1", "queue": "catalog", "state": "delayed",
                               "created": True}  # fmt: skip
    job = get_job("catalog", "camel-1")
    assert job.data == {"key": "k", "fail_times": 1}
    assert (job.priority, job.attempts, job.opts["timeout"]) == (1, 4, 5000)
    assert job.opts["removeOnComplete"] is True and job.opts["backoff"]["type"] == "fixed"


def test_it_answers_400_listing_the_known_types_for_an_unknown_one(api):
    error = assert_error(api.post_json(TRIGGER, {"jobType": "no-such-type"}), 400,
                         "unknown_job_type")  # fmt: skip
    assert "no-such-type" in error["message"]
    assert "ping" in error["known"] and "t-typed" in error["known"]
    assert sum(Queue(q).counts()["waiting"] for q in ("default", "catalog")) == 0


@pytest.mark.parametrize(
    ("body", "field", "why"),
    [
        ({"jobType": "t-typed"}, "count", "required"),
        ({"jobType": "t-typed", "count": "many"}, "count", "integer"),
        ({"jobType": "t-typed", "count": 1, "colour": "red"}, "colour", "not permitted"),
        ({"jobType": "t-typed", "count": 1, "ratio": [1]}, "ratio", "number"),
        ({"jobType": "t-typed", "count": 1, "options": {"priority": 0}}, "options.priority",
         "greater than or equal to 1"),
        ({"jobType": "t-typed", "count": 1, "options": {"jobId": "has space"}}, "options.jobId",
         "pattern"),
        ({"jobType": "t-typed", "count": 1, "options": {"backoff": {"type": "linear"}}},
         "options.backoff.type", "fixed"),
        # `data` and `name` are enqueue()'s own arguments: refused as options, not a 500.
        ({"jobType": "t-typed", "count": 1, "options": {"data": {}}}, "options.data",
         "not permitted"),
        ({"jobType": "t-typed", "count": 1, "options": []}, "options", "object"),
        ({"count": 1}, "jobType", "required"),
        ({"jobType": 7}, "jobType", "string"),
    ],
)  # fmt: skip
def test_it_answers_422_naming_the_field_and_why(api, body, field, why):
    error = assert_error(api.post_json(TRIGGER, body), 422)
    named = {f["field"]: f["message"] for f in error["fields"]}
    assert field in named, error
    assert why in named[field].lower() or why in named[field], named
    assert Queue("default").counts()["waiting"] == 0


def test_it_names_every_bad_field_at_once(api):
    body = {"jobType": "t-typed", "count": "x", "options": {"priority": 99}}
    error = assert_error(api.post_json(TRIGGER, body), 422)
    assert [f["field"] for f in error["fields"]] == ["count", "options.priority"]


def test_an_existing_job_id_answers_200_with_that_job_and_creates_nothing(api):
    first = api.post_json(TRIGGER, {"jobType": "t-echo.catalog", "value": 1,
                                    "options": {"jobId": "nightly", "delay": 60_000}})  # fmt: skip
    assert first.status_code == 202
    again = api.post_json(TRIGGER, {"jobType": "t-echo.catalog", "value": 2,
                                    "options": {"jobId": "nightly"}})  # fmt: skip
    assert again.status_code == 200
    body = again.json()
    assert (body["jobId"], body["state"], body["created"]) == ("nightly", "delayed", False)
    assert body["job"]["data"] == {"value": 1}  # the existing job, untouched
    assert body["job"]["timestamps"]["delayUntil"] is not None
    assert Queue("catalog").counts() == {"waiting": 0, "active": 0, "completed": 0,
                                         "failed": 0, "delayed": 1, "paused": 0,
                                         "waiting-children": 0}  # fmt: skip


def test_a_paused_queue_still_accepts_jobs(api, worker):
    queue = Queue("default")
    queue.pause()
    try:
        response = api.post_json(TRIGGER, {"jobType": "t-echo.default", "value": "later"})
        assert response.status_code == 202
        assert response.json()["state"] == "paused"
        job_id = response.json()["jobId"]
        assert queue.counts()["paused"] == 1
    finally:
        queue.resume()
    assert get_job("default", job_id).wait_until_finished(timeout=30) == "later"


def test_it_answers_413_for_a_body_over_1_mb(api):
    body = {"jobType": "t-echo.catalog", "value": "x" * (1024 * 1024)}
    assert_error(api.post_json(TRIGGER, body), 413, "body_too_large")
    assert Queue("catalog").counts()["waiting"] == 0
    # Just under the cap is fine.
    body["value"] = "x" * (1000 * 1000)
    assert api.post_json(TRIGGER, body).status_code == 202


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        (b'{"jobType": "ping"', "application/json", 400, "invalid_json"),
        (b"[1, 2]", "application/json", 400, "invalid_json"),
        (b'"ping"', "application/json", 400, "invalid_json"),
        (b"", "application/json", 400, "invalid_json"),
        (b'{"jobType": "t-echo.catalog", "value": NaN}', "application/json", 400, "invalid_json"),
        (b"\xff\xfe\x00", "application/json", 400, "invalid_json"),
        (b"[" * 100_000, "application/json", 400, "invalid_json"),
        (b"jobType=ping", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"jobType": "ping"}', "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_it_answers_a_bad_body_with_a_json_4xx(api, raw, content_type, status, code):
    assert_error(api.post(TRIGGER, raw, content_type=content_type), status, code)


def test_a_json_body_with_a_charset_is_fine(api):
    raw = json.dumps({"jobType": "ping"}).encode()
    response = api.post(TRIGGER, raw, content_type="application/json; charset=utf-8")
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("0 0 30 2 *", "never fires"),  # February 30th: it used to be accepted, then break beat
        ("at 0001-01-01T00:00:00+01:00", "out of range"),  # an OverflowError: a 500
        ("at 9999-12-31T23:59:59-01:00", "out of range"),
    ],
)
def test_a_schedule_that_would_never_fire_is_refused_naming_pattern(api, pattern, why):
    body = {"jobType": "schedule-recurring", "key": "k", "target": "ping", "pattern": pattern}
    error = assert_error(api.post_json(TRIGGER, body), 422, "invalid_job_data")
    named = {f["field"]: f["message"] for f in error["fields"]}
    assert list(named) == ["pattern"] and why in named["pattern"], error
    assert Queue("default").counts()["waiting"] == 0
