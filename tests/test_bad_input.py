"""Bad input raises a clear error naming what is wrong, and writes nothing."""

import math

import pytest
from django.conf import settings

from tasks import InvalidJobData, InvalidJobOptions, UnknownJobType, enqueue, enqueue_bulk, keys
from tasks.connection import get_redis


def job_state() -> tuple[set[bytes], int]:
    """Every job key and message in the registry and the broker (heartbeats aside)."""
    client = get_redis()
    heartbeats = (keys.workers().encode(), keys.worker("").encode())
    found = {k for k in client.scan_iter(f"{keys.prefix()}*", count=1000)
             if not k.startswith(heartbeats)}  # fmt: skip
    messages = sum(
        client.llen(lst) for q in settings.JOBYARD_QUEUES for lst in keys.broker_lists(q)
    )
    return found, messages


@pytest.fixture
def nothing_written():
    before = job_state()
    yield
    assert job_state() == before


def test_it_lists_the_known_types_for_an_unknown_one(nothing_written):
    with pytest.raises(UnknownJobType) as caught:
        enqueue("no-such-job", {})
    assert "no-such-job" in str(caught.value)
    assert "ping" in caught.value.known and "t-typed" in caught.value.known


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "count"),  # required
        ({"count": "many"}, "count"),  # wrong type
        ({"count": 1, "colour": "red"}, "colour"),  # not a parameter
        ({"count": 1, "ratio": math.nan}, "ratio"),  # JSON has no NaN
        ({"count": 1, "label": object()}, "label"),
    ],
)
def test_it_names_the_field_that_fails_the_schema(data, field, nothing_written):
    with pytest.raises(InvalidJobData) as caught:
        enqueue("t-typed", data)
    assert field in [e["field"] for e in caught.value.errors]
    assert field in str(caught.value)


def test_it_accepts_the_api_camel_case_and_python_snake_case():
    job = enqueue("t-flaky.catalog", {"key": "k", "failTimes": 0})
    assert job.data == {"key": "k", "fail_times": 0}


def test_it_refuses_non_json_data(nothing_written):
    with pytest.raises(InvalidJobData):
        enqueue("t-echo.catalog", {"value": object()})
    with pytest.raises(InvalidJobData):
        enqueue("t-echo.catalog", {"value": [1.0, math.inf]})
    with pytest.raises(InvalidJobData, match="must be an object"):
        enqueue("t-echo.catalog", ["not", "an", "object"])


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"priority": 0}, "priority"),
        ({"priority": 11}, "priority"),
        ({"delay": -1}, "delay"),
        ({"attempts": 0}, "attempts"),
        ({"timeout": 0}, "timeout"),
        ({"backoff": {"type": "linear"}}, "backoff.type"),
        ({"backoff": {"jitter": 2}}, "backoff.jitter"),
        ({"job_id": "has space"}, "job_id"),
        ({"jobId": "x" * 200}, "jobId"),
        ({"remove_on_complete": -3}, "remove_on_complete"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_it_names_the_option_out_of_range(options, field, nothing_written):
    with pytest.raises(InvalidJobOptions) as caught:
        enqueue("t-echo.catalog", {}, **options)
    assert any(e["field"].startswith(field) for e in caught.value.errors), caught.value.errors


def test_it_writes_no_job_of_a_bulk_when_one_is_bad(nothing_written):
    with pytest.raises(InvalidJobData):
        enqueue_bulk([("t-echo.catalog", {}), ("t-typed", {"count": "x"}), ("t-echo.catalog", {})])
