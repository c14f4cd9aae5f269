"""Runs that end without the job saying how (issue 10.6 and 10.7): each counts as an attempt
with its real cause, retries follow the job's policy, and no job runs more than its
attempts and stalls allow, nor twice at once while its first worker lives."""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from tasks import JobFailed, enqueue, get_job
from tests.conftest import runs, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

QUEUE = "cleanup"  # no shared test worker consumes it
FAST_RETRY = {"type": "fixed", "delay": 10}


def key() -> str:
    return f"die-{uuid.uuid4().hex[:8]}"


def failure_of(how: str, attempts: int = 2, **data) -> tuple[str, object]:
    k = key()
    job = enqueue(f"t-die.{QUEUE}", {"how": how, "key": k, **data}, attempts=attempts,
                  backoff=FAST_RETRY)  # fmt: skip
    with pytest.raises(JobFailed):
        job.wait_until_finished(timeout=60)
    return k, get_job(QUEUE, job.id)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("exit", "SystemExit(0)"),
        ("keyboard", "KeyboardInterrupt()"),
        ("unprintable", "_Unprintable: <str() of the exception failed>"),
        ("os_exit", "worker process exited with exitcode 3"),
        ("segv", "worker process exited with signal 11 (SIGSEGV)"),
    ],
)
def test_a_run_that_ends_its_process_counts_as_an_attempt_with_its_cause(start_worker, how, reason):
    start_worker([QUEUE], concurrency=1)
    k, failed = failure_of(how, attempts=2)
    # Retried once by its policy, then failed: two runs, no stall, the real cause.
    assert (failed.state, failed.attempts_made, failed.stalled_count) == ("failed", 2, 0)
    assert failed.failed_reason == reason
    assert runs(k) == 2


def test_a_hard_time_limit_is_recorded_as_such(start_worker):
    start_worker([QUEUE], concurrency=1)
    # The job ignores its soft limit: the hard limit (soft + 5 s) ends the process.
    k = key()
    job = enqueue(f"t-die.{QUEUE}", {"how": "stubborn", "key": k, "seconds": 20}, attempts=1,
                  timeout=500)  # fmt: skip
    with pytest.raises(JobFailed, match="hard time limit 5.5 s exceeded"):
        job.wait_until_finished(timeout=60)
    assert runs(k) == 1 and get_job(QUEUE, job.id).stalled_count == 0


def test_a_job_holding_the_gil_past_its_lock_is_not_run_twice_meanwhile(start_worker):
    """The test lock lasts 2 s; the pool process cannot renew it for 5 s, its main can."""
    start_worker([QUEUE], concurrency=2)
    k = key()
    job = enqueue(f"t-die.{QUEUE}", {"how": "gil", "key": k, "seconds": 5}, attempts=1)
    assert job.wait_until_finished(timeout=60) is None
    done = get_job(QUEUE, job.id)
    assert (runs(k), done.stalled_count, done.attempts_made) == (1, 0, 1)


def test_a_job_cut_off_at_shutdown_counts_an_attempt_and_follows_its_policy(start_worker):
    env = {"WORKER_SHUTDOWN_GRACE": "1"}
    k = key()
    once = enqueue(f"t-die.{QUEUE}", {"how": "hang", "key": k, "seconds": 30}, attempts=1)
    twice = enqueue(f"t-die.{QUEUE}", {"how": "hang", "key": k, "seconds": 30}, attempts=2,
                    backoff={"type": "fixed", "delay": 3_000_000})  # fmt: skip
    worker = start_worker([QUEUE], concurrency=2, env=env)
    wait_for(lambda: runs(k) == 2, message="both running")
    worker.stop(signal.SIGTERM)  # 1 s of grace, then cut off
    cut = get_job(QUEUE, once.id)
    assert (cut.state, cut.attempts_made) == ("failed", 1)
    assert cut.failed_reason.startswith("cut off by the worker's shutdown")
    again = get_job(QUEUE, twice.id)
    # Its back-off (30 s at the tests' 0.01 scale) decides when, not the shutdown.
    assert (again.state, again.attempts_made) == ("delayed", 1)
    # Restarted workers do not run the failed one again, however often they stop.
    for _ in range(2):
        worker = start_worker([QUEUE], concurrency=2, env=env)
        time.sleep(1)
        worker.stop(signal.SIGTERM)
    assert runs(k) == 2


def test_a_job_is_started_at_most_attempts_plus_stalls_times(start_worker):
    """Whatever ends its runs: here SIGKILLs of the whole worker, which leave stalls."""
    k = key()
    job = enqueue(f"t-die.{QUEUE}", {"how": "hang", "key": k, "seconds": 30}, attempts=1)
    for expected in (1, 2):  # attempts (1) + JOBYARD_MAX_STALLED (1)
        worker = start_worker([QUEUE], concurrency=1)
        wait_for(lambda n=expected: runs(k) == n, message=f"start {expected}")
        worker.kill()
    start_worker([QUEUE], concurrency=1)
    failed = wait_for(lambda: (j := get_job(QUEUE, job.id)).state == "failed" and j,
                      message="failed past its budget")  # fmt: skip
    assert runs(k) == 2
    assert "stalled more than allowable limit" in failed.failed_reason
