"""Deduplication windows and debounce (BullMQ's deduplication modes), at their edges, with
concurrent enqueuers: exactly one job per window."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks import InvalidJobOptions, enqueue, get_job, keys, scripts
from tasks.connection import get_redis
from tasks.events import read_events
from tasks.testing import run_enqueued
from tasks.worker.claims import claim, worker_name
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "catalog"  # no session worker consumes it: the jobs stay where the test puts them


def created_ids() -> list[str]:
    """Ids of the jobs created in QUEUE, in order (one `waiting` or `delayed` event each)."""
    seen: dict[str, None] = {}
    for event in read_events({QUEUE: "0-0"}):
        if event.event in ("waiting", "delayed") and event.fields.get("reason") != "debounced":
            seen.setdefault(event.job_id, None)
    return list(seen)


def hammer(send, threads: int, until) -> list:
    """`send()` from `threads` threads at once, over and over, until `until(answers)`."""
    answers: list = []
    lock = threading.Lock()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            job = send()
            with lock:
                answers.append(job)
                if until(answers):
                    stop.set()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(loop) for _ in range(threads)]:
            future.result(timeout=120)
    return answers


def test_it_returns_the_first_job_within_ttl_even_after_it_completed():
    first = enqueue("t-echo.catalog", {"value": 1}, dedupe={"key": "k1", "ttl": 60_000})
    assert first.state == "waiting"
    assert run_enqueued(first).state == "completed"
    again = enqueue("t-echo.catalog", {"value": 2}, dedupe={"key": "k1", "ttl": 60_000})
    assert again.id == first.id
    assert (again.state, again.data) == ("completed", {"value": 1})
    assert created_ids() == [first.id]  # nothing else was created
    other = enqueue("t-echo.catalog", {"value": 3}, dedupe={"key": "k2", "ttl": 60_000})
    assert other.id != first.id


def test_concurrent_enqueuers_get_one_job_per_window_across_the_ttl_edge():
    """Eight threads enqueue with one key across three windows of 300 ms: each window has
    exactly one job, and the next one is created only once the previous window is over
    (just before the edge the first job is returned, just after it a new one is made)."""
    ttl = 300
    dedupe = {"key": "edge", "ttl": ttl}

    def send():
        return enqueue("t-echo.catalog", {}, dedupe=dedupe).id

    answers = hammer(send, 8, lambda seen: len(set(seen)) >= 3)
    jobs = [get_job(QUEUE, job_id) for job_id in created_ids()]
    assert len(jobs) >= 3 and {j.id for j in jobs} == set(answers)
    for earlier, later in zip(jobs, jobs[1:], strict=False):
        # Redis's clock for both: the key expires `ttl` ms after the job that set it.
        assert later.created_at - earlier.created_at >= ttl - 1
    assert len(answers) > 3 * 8  # each window saw many enqueues answered with its job


def test_the_window_is_the_keys_lifetime():
    first = enqueue("t-echo.catalog", {}, dedupe={"key": "life", "ttl": 60_000})
    pttl = get_redis().pttl(keys.dedupe(QUEUE, "life"))
    assert 0 < pttl <= 60_000
    get_redis().delete(keys.dedupe(QUEUE, "life"))  # the window is over
    assert enqueue("t-echo.catalog", {}, dedupe={"key": "life", "ttl": 60_000}).id != first.id


def test_a_debounced_job_takes_the_latest_data_and_restarts_its_delay():
    first = enqueue("t-echo.catalog", {"value": 1}, debounce={"key": "d", "delay": 60_000})
    assert first.state == "delayed"
    due = get_job(QUEUE, first.id).delay_until
    time.sleep(0.01)
    values = iter(range(2, 10_000))
    lock = threading.Lock()

    def send():
        with lock:
            value = next(values)
        job = enqueue("t-echo.catalog", {"value": value}, debounce={"key": "d", "delay": 60_000})
        return job.id

    answers = hammer(send, 8, lambda seen: len(seen) >= 200)
    assert set(answers) == {first.id}
    assert created_ids() == [first.id]  # one job, replaced, never a second
    job = get_job(QUEUE, first.id)
    assert job.state == "delayed" and job.delay_until > due  # its delay restarted
    last = enqueue("t-echo.catalog", {"value": -1}, debounce={"key": "d", "delay": 60_000})
    assert last.id == first.id and last.data == {"value": -1}
    assert run_enqueued(get_job(QUEUE, first.id)).returnvalue == -1  # with the latest data


def test_a_debounce_after_the_job_started_makes_a_new_job_once():
    first = enqueue("t-echo.catalog", {"value": 1}, debounce={"key": "s", "delay": 60_000})
    get_redis().zadd(keys.state(QUEUE, "delayed"), {first.id: 0}, xx=True)
    scripts.promote([QUEUE])
    assert not isinstance(claim(QUEUE, first.id, worker_name("pytest")), scripts.NotClaimed)

    def send():
        return enqueue("t-echo.catalog", {"value": 2}, debounce={"key": "s", "delay": 60_000}).id

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: send(), range(64)))
    (second,) = set(answers)
    assert second != first.id
    assert created_ids() == [first.id, second]
    assert get_job(QUEUE, second).state == "delayed"
    assert get_job(QUEUE, first.id).state == "active"


def test_a_debounced_job_runs_when_its_delay_is_over():
    job = enqueue("t-echo.catalog", {"value": 1}, debounce={"key": "r", "delay": 200})
    wait_for(lambda: scripts.promote([QUEUE]) and get_job(QUEUE, job.id).state == "waiting",
             timeout=30)  # fmt: skip
    assert enqueue("t-echo.catalog", {"value": 2}, debounce={"key": "r", "delay": 200}).id != job.id


@pytest.mark.parametrize(
    "options",
    [
        {"debounce": {"key": "x", "delay": 10}, "delay": 5},
        {"debounce": {"key": "x", "delay": 10}, "job_id": "j1"},
        {"debounce": {"key": "x", "delay": 10}, "dedupe": {"key": "x", "ttl": 10}},
        {"dedupe": {"key": "", "ttl": 10}},
        {"dedupe": {"key": "x", "ttl": 0}},
        {"dedupe": {"key": "x"}},
        {"debounce": {"key": "x", "delay": "10"}},
    ],
)
def test_bad_windows_are_refused_and_write_nothing(options):
    with pytest.raises(InvalidJobOptions):
        enqueue("t-echo.catalog", {}, **options)
    assert created_ids() == []
