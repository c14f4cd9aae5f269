"""The I/O pools (`-P threads`, `-P gevent`) and the solo pool keep Jobyard's promises: jobs
claimed once and run concurrently, locks renewed on long jobs, a SIGKILLed worker's job
recovered as stalled, timeouts (enforced by gevent; by threads and solo when the job
returns: docs/operations.md, "Pools"), and a warm shutdown that finishes running jobs.

Each test runs workers of its own on the `cleanup` queue (no shared worker consumes it).
"""

from __future__ import annotations

import time
import uuid

import pytest

from tasks import JobFailed, Queue, enqueue, get_job
from tests.conftest import runs, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

QUEUE = "cleanup"
IO_POOLS = ["threads", "gevent"]
POOLS = [*IO_POOLS, "solo"]


def key() -> str:
    return f"pool-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("pool", IO_POOLS)
def test_jobs_run_concurrently_each_claimed_once(start_worker, pool):
    start_worker([QUEUE], concurrency=4, pool=pool)
    start_worker([QUEUE], concurrency=4, pool=pool)
    k = key()
    jobs = [enqueue(f"t-sleep.{QUEUE}", {"seconds": 1.5, "key": k}) for _ in range(16)]
    # Eight at once: both workers' four slots busy (not a speed figure: a count).
    wait_for(lambda: Queue(QUEUE).counts()["active"] >= 8, timeout=60,
             message="eight jobs running at once")  # fmt: skip
    for job in jobs:
        assert job.wait_until_finished(timeout=60) == 1.5
    assert runs(k) == 16
    workers = {get_job(QUEUE, j.id).worker.split(":")[0] for j in jobs}
    assert len(workers) == 2


@pytest.mark.parametrize("pool", POOLS)
def test_a_long_job_keeps_its_lock_and_runs_once(start_worker, pool):
    # A 1 s lock checked for stalls every 0.3 s: a job of 4 s lives on renewals alone.
    env = {"JOBYARD_LOCK_DURATION_MS": "1000", "JOBYARD_STALLED_INTERVAL_MS": "300"}
    start_worker([QUEUE], concurrency=2, pool=pool, env=env)
    start_worker([QUEUE], concurrency=2, pool=pool, env=env)
    k = key()
    jobs = [enqueue(f"t-sleep.{QUEUE}", {"seconds": 4, "key": k}) for _ in range(2)]
    for job in jobs:
        assert job.wait_until_finished(timeout=60) == 4
        assert get_job(QUEUE, job.id).stalled_count == 0
    assert runs(k) == 2


@pytest.mark.parametrize("pool", POOLS)
def test_a_killed_workers_job_is_found_stalled_and_runs_again(start_worker, pool):
    env = {"JOBYARD_LOCK_DURATION_MS": "2000", "JOBYARD_STALLED_INTERVAL_MS": "500"}
    doomed = start_worker([QUEUE], concurrency=2, pool=pool, env=env)
    k = key()
    job = enqueue(f"t-sleep.{QUEUE}", {"seconds": 2, "key": k})
    wait_for(lambda: runs(k) == 1, message="the job to start")
    doomed.kill()
    survivor = start_worker([QUEUE], concurrency=2, pool=pool, env=env)
    assert job.wait_until_finished(timeout=60) == 2
    job.refresh()
    assert job.worker.startswith(survivor.name)
    assert (job.stalled_count, runs(k)) == (1, 2)


def test_gevent_enforces_a_jobs_timeout(start_worker):
    start_worker([QUEUE], concurrency=4, pool="gevent")
    k = key()
    job = enqueue(f"t-sleep.{QUEUE}", {"seconds": 30, "key": k}, attempts=1, timeout=500)
    with pytest.raises(JobFailed, match="timed out after 500 ms|time limit"):
        job.wait_until_finished(timeout=60)
    assert runs(k) == 1


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_threads_and_solo_fail_an_overrunning_attempt_when_it_returns(start_worker, pool):
    # A thread cannot be stopped from outside: the attempt runs to its end, then counts as
    # timed out, and the job's retry policy decides (docs/operations.md, "Pools").
    start_worker([QUEUE], concurrency=2, pool=pool)
    k = key()
    job = enqueue(f"t-sleep.{QUEUE}", {"seconds": 1.5, "key": k}, attempts=2, timeout=500,
                  backoff={"type": "fixed", "delay": 10})  # fmt: skip
    with pytest.raises(JobFailed, match="timed out after 500 ms"):
        job.wait_until_finished(timeout=60)
    failed = get_job(QUEUE, job.id)
    assert (failed.attempts_made, runs(k)) == (2, 2)
    # Within its time, the same job completes.
    quick = enqueue(f"t-sleep.{QUEUE}", {"seconds": 0.1}, timeout=5000)
    assert quick.wait_until_finished(timeout=30) == 0.1


@pytest.mark.parametrize("pool", POOLS)
def test_a_warm_shutdown_finishes_running_jobs_and_takes_no_new_one(start_worker, pool):
    concurrency = 1 if pool == "solo" else 3
    worker = start_worker([QUEUE], concurrency=concurrency, pool=pool,
                          env={"WORKER_SHUTDOWN_GRACE": "30"})  # fmt: skip
    k = key()
    jobs = [enqueue(f"t-sleep.{QUEUE}", {"seconds": 2, "key": k}) for _ in range(concurrency)]
    wait_for(lambda: runs(k) == concurrency, message="every job to start")
    worker.process.terminate()
    later = enqueue(f"t-record.{QUEUE}", {"key": k})
    worker.process.wait(45)
    assert [j.refresh().state for j in jobs] == ["completed"] * concurrency
    assert later.refresh().state == "waiting" and runs(k) == concurrency


@pytest.mark.parametrize("pool", IO_POOLS)
def test_the_shutdown_grace_cuts_off_a_long_job_and_it_runs_again(start_worker, pool):
    worker = start_worker([QUEUE], concurrency=2, pool=pool, env={"WORKER_SHUTDOWN_GRACE": "1"})
    k = key()
    job = enqueue(f"t-sleep.{QUEUE}", {"seconds": 30, "key": k}, attempts=2,
                  backoff={"type": "fixed", "delay": 10})  # fmt: skip
    wait_for(lambda: runs(k) == 1, message="the job to start")
    started = time.monotonic()
    worker.process.terminate()
    worker.process.wait(60)
    # Ended by the grace, not by the job's 30 s (the margin is for a loaded machine).
    assert time.monotonic() - started < 25
    cut = get_job(QUEUE, job.id)
    assert "cut off by the worker's shutdown" in (cut.failed_reason or "")
    assert cut.attempts_made == 1
