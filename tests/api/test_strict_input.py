"""JSON types are strict everywhere a job is made: a string is not a number, a boolean is
not a number and a number is not a boolean, in the trigger API, the Python API and the CLI.
Bad input is a 4xx JSON error naming the field; nothing is enqueued."""

from __future__ import annotations

import datetime
import uuid

import pytest

from tasks import InvalidJobData, InvalidJobOptions, Queue, enqueue
from tasks.options import JobOptions, parse_options
from tasks.registry import JobType, _schema_from_signature
from tests.api.conftest import assert_error

TRIGGER = "/api/admin/jobs/trigger"


def nothing_waiting() -> bool:
    return all(sum(Queue(q).counts().values()) == 0 for q in ("default", "catalog"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"delay": "10"}, "options.delay"),
        ({"delay": True}, "options.delay"),
        ({"delay": 10.5}, "options.delay"),
        ({"priority": "1"}, "options.priority"),
        ({"priority": True}, "options.priority"),
        ({"attempts": "3"}, "options.attempts"),
        ({"timeout": False}, "options.timeout"),
        ({"jobId": 12}, "options.jobId"),
        ({"removeOnComplete": "yes"}, "options.removeOnComplete"),
        ({"removeOnFail": "10"}, "options.removeOnFail"),
        ({"removeOnFail": {"age": "60"}}, "options.removeOnFail"),
        ({"backoff": {"delay": "5000"}}, "options.backoff.delay"),
        ({"backoff": {"factor": True}}, "options.backoff.factor"),
        ({"backoff": {"jitter": "0.5"}}, "options.backoff.jitter"),
    ],
)
def test_the_trigger_api_refuses_options_of_the_wrong_json_type(api, options, field):
    body = {"jobType": "t-echo.catalog", "value": 1, "options": options}
    error = assert_error(api.post_json(TRIGGER, body), 422, "invalid_job_options")
    named = [f["field"] for f in error["fields"]]
    assert any(name.startswith(field) for name in named), error
    assert field in error["message"]
    assert nothing_waiting()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"count": "3"}, "count"),
        ({"count": True}, "count"),
        ({"count": 3.0}, "count"),
        ({"count": 1, "ratio": True}, "ratio"),
        ({"count": 1, "ratio": "0.5"}, "ratio"),
        ({"count": 1, "label": 5}, "label"),
        ({"count": 1, "label": False}, "label"),
    ],
)
def test_the_trigger_api_refuses_parameters_of_the_wrong_json_type(api, params, field):
    error = assert_error(api.post_json(TRIGGER, {"jobType": "t-typed", **params}), 422,
                         "invalid_job_data")  # fmt: skip
    assert [f["field"] for f in error["fields"]] == [field], error
    assert nothing_waiting()


@pytest.mark.django_db(transaction=True)  # the job is sent at once, not on a commit
def test_the_right_json_types_still_pass_and_an_integer_is_a_float(api):
    body = {"jobType": "t-typed", "count": 2, "ratio": 1, "label": "ok",
            "options": {"delay": 60_000, "priority": 1, "attempts": 2, "timeout": 5000,
                        "removeOnComplete": True, "removeOnFail": 10,
                        "backoff": {"type": "exponential", "delay": 100, "factor": 3,
                                    "jitter": 0}}}  # fmt: skip
    response = api.post_json(TRIGGER, body)
    assert response.status_code == 202, response.content
    assert Queue("default").counts()["delayed"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [({"grace": "10"}, "grace"), ({"limit": True}, "limit"), ({"grace": 1.5}, "grace")],
)
def test_clean_refuses_a_body_of_the_wrong_json_type(api, body, field):
    error = assert_error(api.post_json("/api/v1/queues/default/clean", body), 422,
                         "invalid_request")  # fmt: skip
    assert [f["field"] for f in error["fields"]] == [field]


@pytest.mark.django_db(transaction=True)
def test_the_python_api_is_strict_too_and_takes_its_documented_forms():
    with pytest.raises(InvalidJobOptions) as caught:
        enqueue("t-echo.catalog", {}, delay="10")
    assert [e["field"] for e in caught.value.errors] == ["delay"]
    with pytest.raises(InvalidJobOptions):
        enqueue("t-echo.catalog", {}, priority=True)
    with pytest.raises(InvalidJobData) as caught:
        enqueue("t-typed", {"count": True})
    assert [e["field"] for e in caught.value.errors] == ["count"]
    job = enqueue("t-echo.catalog", {"value": 1}, delay=60_000, priority=1,
                  job_id=f"py-{uuid.uuid4().hex[:6]}", remove_on_complete=True,
                  backoff={"type": "fixed", "delay": 10})  # fmt: skip
    assert job.state == "delayed"
    assert nothing_waiting() is False


@pytest.mark.pure
def test_stored_options_read_back_as_the_worker_reads_them():
    opts = parse_options({"delay": 5, "priority": 2, "backoff": {"delay": 5000, "factor": 5},
                          "removeOnFail": {"age": 60, "count": 5}})  # fmt: skip
    stored = opts.model_dump_json(by_alias=True, exclude_none=True)
    assert JobOptions.model_validate_json(stored) == opts  # tasks.worker.runner.parse_opts
    merged = parse_options({"attempts": 4}).merged_over(opts)
    assert (merged.attempts, merged.backoff.factor, merged.delay) == (4, 5.0, 5)


@pytest.mark.pure
def test_dates_keep_their_json_form_and_python_objects_still_pass():
    def func(job, day, run_id, when=None):
        pass

    # The types themselves, not this module's postponed strings.
    func.__annotations__ = {"day": datetime.date, "run_id": uuid.UUID,
                            "when": datetime.datetime | None}  # fmt: skip

    declared = JobType(name="t-dated", queue="default", func=func,
                       schema=_schema_from_signature("t-dated", func),
                       defaults=JobOptions(), throws=(), description="")  # fmt: skip
    run_id = uuid.uuid4()
    from_json = declared.validate({"day": "2024-06-01", "runId": str(run_id),
                                   "when": "2024-06-01T10:00:00Z"})  # fmt: skip
    from_python = declared.validate({"day": datetime.date(2024, 6, 1), "run_id": run_id,
                                     "when": datetime.datetime(2024, 6, 1, 10,
                                                               tzinfo=datetime.UTC)})  # fmt: skip
    assert from_json == from_python
    assert from_json["day"] == "2024-06-01" and from_json["run_id"] == str(run_id)
    for bad in ({"day": 20240601, "runId": str(run_id)}, {"day": True, "runId": str(run_id)},
                {"day": datetime.date(2024, 6, 1), "runId": 7}):  # fmt: skip
        with pytest.raises(InvalidJobData):
            declared.validate(bad)
