"""Retry decisions and back-off, tested on their own (no Redis, no worker)."""

import pytest

from tasks.options import Backoff, JobOptions, parse_options
from tasks.worker.runner import retry_delay

pytestmark = pytest.mark.pure


def test_it_waits_5_25_125_seconds_under_the_default_policy(settings):
    settings.JOBYARD = {**settings.JOBYARD, "BACKOFF_SCALE": 1.0}
    policy = parse_options(
        {"attempts": 4, "backoff": {"type": "exponential", "delay": 5000, "factor": 5}}
    )
    assert [retry_delay(policy, n, permanent=False) for n in (1, 2, 3)] == [5000, 25000, 125000]
    assert retry_delay(policy, 4, permanent=False) == -1  # the budget is spent


def test_it_doubles_by_default_and_holds_still_when_fixed():
    assert [Backoff(delay=100).delay_for(n) for n in (1, 2, 3, 4)] == [100, 200, 400, 800]
    assert [Backoff(type="fixed", delay=100).delay_for(n) for n in (1, 2, 3)] == [100, 100, 100]


def test_it_spreads_retries_with_jitter_within_bounds():
    backoff = Backoff(delay=1000, factor=2, jitter=0.5)
    assert backoff.delay_for(1, rand=lambda: 0.0) == 1000
    assert backoff.delay_for(1, rand=lambda: 1.0) == 500
    assert len({backoff.delay_for(3) for _ in range(50)}) > 1
    assert all(2000 <= backoff.delay_for(3) <= 4000 for _ in range(200))


def test_it_never_retries_a_permanent_error_or_a_single_attempt():
    assert (
        retry_delay(parse_options({"attempts": 5}).merged_over(JobOptions()), 1, permanent=True)
        == -1
    )
    assert retry_delay(parse_options({"attempts": 1}), 1, permanent=False) == -1


def test_it_scales_backoff_by_setting(settings):
    settings.JOBYARD = {**settings.JOBYARD, "BACKOFF_SCALE": 0.01}
    policy = parse_options({"attempts": 3, "backoff": {"delay": 5000, "factor": 5}})
    assert [retry_delay(policy, n, permanent=False) for n in (1, 2)] == [50, 250]


@pytest.mark.parametrize(
    ("value", "completed", "expected"),
    [(None, True, (100, 0)), (True, True, (0, 0)), (False, False, (-1, 0)), (7, False, (7, 0)),
     ({"age": 60, "count": 10}, True, (10, 60000)), ({"age": 60}, True, (-1, 60000))],
)  # fmt: skip
def test_it_maps_retention_options(value, completed, expected):
    key = "remove_on_complete" if completed else "remove_on_fail"
    options = parse_options({} if value is None else {key: value})
    assert options.retention(completed, 100) == expected


def test_it_maps_priority_to_broker_steps_with_1_first():
    assert parse_options({"priority": 1}).priority_step() == 0
    assert parse_options({"priority": 10}).priority_step() == 9
    assert parse_options({}).priority_step() == 4  # normal is priority 5


def test_it_gives_celery_a_soft_and_a_hard_time_limit():
    assert parse_options({"timeout": 2000}).timelimit() == "[7.0, 2.0]"
    assert parse_options({}).timelimit() == "[null, null]"
