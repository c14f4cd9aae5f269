"""A job's life on real workers: states, retries, timeouts, retention, dead letters, events."""

import threading
import uuid

import pytest

from tasks import JobFailed, Queue, enqueue, enqueue_bulk, get_job, subscribe
from tests.conftest import runs, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def key() -> str:
    return f"t:{uuid.uuid4().hex[:8]}"


def test_it_keeps_each_job_in_exactly_one_state_and_counts_agree(start_worker):
    queue = Queue("catalog")  # no worker consumes it until this test starts one
    k = key()
    waiting = enqueue("t-echo.catalog", {"value": 1})
    delayed = enqueue("t-echo.catalog", {}, delay=60_000)
    failing = enqueue("t-permanent.catalog", {})
    running = enqueue("t-sleep.catalog", {"seconds": 30, "key": k})
    assert queue.counts() == {"waiting": 3, "active": 0, "completed": 0, "failed": 0,
                              "delayed": 1, "paused": 0, "waiting-children": 0}  # fmt: skip

    start_worker(["catalog"], concurrency=1)
    wait_for(lambda: runs(k) == 1, message="the sleeping job to start")
    assert waiting.refresh().state == "completed"
    assert failing.refresh().state == "failed"
    assert running.refresh().state == "active"
    assert delayed.refresh().state == "delayed"

    counts = queue.counts()
    assert counts == {
        "waiting": 0,
        "active": 1,
        "completed": 1,
        "failed": 1,
        "delayed": 1,
        "paused": 0,
        "waiting-children": 0,
    }
    for state, count in counts.items():
        listed = queue.get_jobs([state], 0, 99)
        assert len(listed) == count
        assert all(job.state == state for job in listed)
    everyone = queue.get_jobs(["waiting", "active", "completed", "failed", "delayed"], 0, 99)
    assert sorted(j.id for j in everyone) == sorted(
        j.id for j in (waiting, delayed, failing, running)
    )


def test_it_pages_through_a_listing_across_states(worker):
    jobs = enqueue_bulk([("t-echo.default", {"value": i}) for i in range(7)])
    wait_for(lambda: Queue("default").counts()["completed"] == 7)
    enqueue_bulk([("t-echo.default", {}, {"delay": 60_000}) for _ in range(3)])
    pages = [
        Queue("default").get_jobs(["completed", "delayed"], start, start + 3) for start in (0, 4, 8)
    ]
    assert [len(p) for p in pages] == [4, 4, 2]
    ids = [j.id for page in pages for j in page]
    assert len(set(ids)) == 10
    assert set(ids[:7]) == {j.id for j in jobs}  # completed first, newest first


def test_it_retries_with_the_documented_backoff_then_completes(worker):
    k = key()
    job = enqueue("t-flaky.default", {"key": k, "fail_times": 2})
    events = []
    assert job.wait_until_finished(timeout=30) == 3
    job.refresh()
    assert job.state == "completed"
    assert job.attempts_made == 3
    assert runs(k) == 3
    assert job.failed_reason == "RuntimeError: failure 2"
    assert len(job.stacktrace) == 2 and "RuntimeError: failure 1" in job.stacktrace[0]
    # The default policy, scaled 1/100 by tests/settings.py: 5 s and 25 s become 50 and 250 ms.
    from tasks.events import read_events

    events = [e for e in read_events({"default": "0-0"}) if e.job_id == job.id]
    retrying = [e for e in events if e.event == "retrying"]
    assert [int(e.fields["delay"]) for e in retrying] == [50, 250]
    starts = [int(e.id.split("-")[0]) for e in events if e.event == "active"]
    assert starts[1] - starts[0] >= 50 and starts[2] - starts[1] >= 250


def test_it_fails_after_the_last_attempt_with_reason_and_traces(worker):
    k = key()
    job = enqueue(
        "t-flaky.default",
        {"key": k, "fail_times": 10},
        attempts=2,
        backoff={"type": "fixed", "delay": 10},
    )
    with pytest.raises(JobFailed, match="failure 2"):
        job.wait_until_finished(timeout=30)
    job.refresh()
    assert (job.state, job.attempts_made, runs(k)) == ("failed", 2, 2)
    assert len(job.stacktrace) == 2


def test_it_fails_a_permanent_error_at_once(worker):
    job = enqueue("t-permanent.default", {}, attempts=5)
    with pytest.raises(JobFailed, match="PermanentError: this input can never work"):
        job.wait_until_finished(timeout=30)
    assert job.refresh().attempts_made == 1
    declared = enqueue("t-throws", {})  # KeyError is declared in throws=
    with pytest.raises(JobFailed, match="KeyError"):
        declared.wait_until_finished(timeout=30)
    assert declared.refresh().attempts_made == 1


def test_it_fails_an_attempt_that_runs_past_its_timeout_then_retries(worker):
    k = key()
    job = enqueue("t-sleep.default", {"seconds": 5, "key": k}, timeout=300, attempts=2,
                  backoff={"type": "fixed", "delay": 10})  # fmt: skip
    with pytest.raises(JobFailed, match="timed out after 300 ms"):
        job.wait_until_finished(timeout=30)
    job.refresh()
    assert job.attempts_made == 2 and runs(k) == 2
    assert job.processed_on - job.created_at < 5000  # the second attempt did not wait 5 s


def test_it_keeps_the_last_100_completed_and_50_failed_by_default(worker):
    first = enqueue_bulk([("t-echo.default", {"value": i}) for i in range(120)])
    wait_for(lambda: Queue("default").counts()["completed"] == 100 and
             get_job("default", first[-1].id) and get_job("default", first[-1].id).state == "completed")  # fmt: skip
    assert get_job("default", first[0].id) is None  # the oldest were removed
    failed = enqueue_bulk([("t-permanent.default", {}) for _ in range(60)])
    wait_for(lambda: (j := get_job("default", failed[-1].id)) and j.state == "failed")
    assert Queue("default").counts()["failed"] == 50


def test_it_honours_retention_options_per_job(worker):
    kept = enqueue("t-echo.default", {"value": 1})
    assert kept.wait_until_finished(timeout=30) == 1
    gone = enqueue("t-echo.default", {"value": 2}, remove_on_complete=True)
    assert gone.wait_until_finished(timeout=30) == 2  # the result still reaches the waiter
    assert get_job("default", gone.id) is None
    assert get_job("default", kept.id).state == "completed"  # only that job went

    few = enqueue_bulk(
        [("t-echo.default", {"value": i}, {"remove_on_complete": 2}) for i in range(5)]
    )
    for job in few:
        job.wait_until_finished(timeout=30)
    assert Queue("default").counts()["completed"] == 2

    failed = enqueue("t-permanent.default", {}, remove_on_fail={"age": 3600, "count": 0})
    with pytest.raises(JobFailed):
        failed.wait_until_finished(timeout=30)
    assert get_job("default", failed.id) is None


def test_a_wait_that_begins_after_the_job_ended_and_was_removed_still_gets_its_fate(worker):
    """A fast job removed on completion can be gone before its caller starts waiting."""
    done = enqueue("t-echo.default", {"value": 3}, remove_on_complete=True)
    failed = enqueue("t-permanent.default", {}, remove_on_fail=True)
    wait_for(lambda: get_job("default", done.id) is None and get_job("default", failed.id) is None,
             message="both jobs ended and removed")  # fmt: skip
    assert done.wait_until_finished(timeout=5) == 3
    with pytest.raises(JobFailed, match="can never work"):
        failed.wait_until_finished(timeout=5)


def test_it_cleans_by_age_and_state(worker):
    jobs = enqueue_bulk([("t-echo.default", {}) for _ in range(5)])
    wait_for(lambda: Queue("default").counts()["completed"] == 5)
    queue = Queue("default")
    assert queue.clean(grace_ms=60_000, limit=100, state="completed") == []
    removed = queue.clean(grace_ms=0, limit=3, state="completed")
    assert len(removed) == 3 and set(removed) <= {j.id for j in jobs}
    assert queue.counts()["completed"] == 2


def test_it_retries_and_removes_dead_letters_with_a_fresh_budget(worker):
    k = key()
    job = enqueue("t-flaky.default", {"key": k, "fail_times": 2}, attempts=2,
                  backoff={"type": "fixed", "delay": 10})  # fmt: skip
    with pytest.raises(JobFailed):
        job.wait_until_finished(timeout=30)
    queue = Queue("default")
    assert [j.id for j in queue.get_failed()] == [job.id]
    job.retry()  # attempts 3 and 4 of the flaky job: the third run passes
    assert job.wait_until_finished(timeout=30) == 3
    assert job.refresh().attempts_made == 1

    doomed = enqueue_bulk([("t-permanent.default", {}) for _ in range(3)])
    wait_for(lambda: queue.counts()["failed"] == 3)
    doomed[0].refresh().remove()
    assert get_job("default", doomed[0].id) is None
    assert queue.retry_failed() == 2
    wait_for(
        lambda: (
            queue.counts()["failed"] == 2
            and all(get_job("default", d.id).attempts_made == 1 for d in doomed[1:])
        )
    )


def test_it_streams_progress_and_states_to_a_subscriber_in_order(worker):
    seen = []
    stream = subscribe(["email"])
    ready = threading.Event()

    def listen():
        ready.set()
        for event in stream:
            seen.append(event)
            if event.event in ("completed", "failed"):
                return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait()
    job = enqueue("t-progress.email", {"steps": 4})
    assert job.wait_until_finished(timeout=30) == "done"
    listener.join(10)
    mine = [(e.event, e.fields.get("progress")) for e in seen if e.job_id == job.id]
    assert mine == [("waiting", None), ("active", None), ("progress", "25"), ("progress", "50"),
                    ("progress", "75"), ("progress", "100"),
                    ("progress", '{"stage":"done","steps":4}'), ("completed", None)]  # fmt: skip
    assert job.refresh().progress == {"stage": "done", "steps": 4}
