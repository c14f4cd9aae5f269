"""Nothing is lost and nothing runs twice: delays, restarts, SIGKILL, duplicates, SIGTERM.

Every test here runs workers of its own on the `cleanup` queue, and kills or restarts them.
"""

import time
import uuid

import pytest

from tasks import Queue, enqueue, get_job
from tasks.connection import get_redis
from tests.conftest import runs, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
QUEUE = "cleanup"


def key() -> str:
    return f"t:{uuid.uuid4().hex[:8]}"


def broker_messages() -> int:
    client = get_redis()
    return sum(client.llen(name) for name in (QUEUE, *(f"{QUEUE}:{s}" for s in range(1, 10))))


def test_a_delay_beyond_the_visibility_timeout_runs_exactly_once(start_worker):
    # A 2 s visibility timeout: Celery's countdown would redeliver this job every 2 s.
    env = {"CELERY_BROKER_VISIBILITY_TIMEOUT": "2"}
    start_worker([QUEUE], env=env)
    start_worker([QUEUE], env=env)
    k = key()
    job = enqueue(f"t-record.{QUEUE}", {"key": k}, delay=5000)
    time.sleep(1)
    # The delayed job waits in Redis, not in a worker: no message exists for it yet.
    assert broker_messages() == 0
    assert in_flight(job.id) == 0
    assert job.refresh().state == "delayed"
    assert job.wait_until_finished(timeout=30) == 1
    time.sleep(3)  # longer than the visibility timeout: a redelivery would have run by now
    assert runs(k) == 1


def test_delayed_jobs_survive_a_restart_of_every_worker(start_worker):
    first = start_worker([QUEUE])
    k = key()
    jobs = [enqueue(f"t-record.{QUEUE}", {"key": k}, delay=1500) for _ in range(3)]
    first.stop()  # warm shutdown, before any is due
    time.sleep(2)  # all are due now, and no worker runs
    assert all(job.refresh().state in ("delayed", "waiting") for job in jobs)
    start_worker([QUEUE])
    for job in jobs:
        job.wait_until_finished(timeout=30)
    assert runs(k) == 3


def test_a_job_whose_worker_is_killed_runs_again_elsewhere_once(start_worker):
    doomed = start_worker([QUEUE], concurrency=1)
    k = key()
    job = enqueue(f"t-sleep.{QUEUE}", {"seconds": 2, "key": k})
    wait_for(lambda: runs(k) == 1, message="the job to start")
    assert job.refresh().worker.startswith(doomed.name)
    doomed.kill()  # SIGKILL to the worker and its pool child
    survivor = start_worker([QUEUE], concurrency=1)
    assert job.wait_until_finished(timeout=30) == 2
    job.refresh()
    assert job.worker.startswith(survivor.name)
    assert (job.stalled_count, job.attempts_made, runs(k)) == (1, 1, 2)
    time.sleep(1)
    assert runs(k) == 2  # not a third time, although the dead worker's message is unacked


def test_a_job_stalled_past_the_limit_fails_saying_so(start_worker):
    doomed = start_worker([QUEUE], concurrency=1)
    k = key()
    job = enqueue(f"t-sleep.{QUEUE}", {"seconds": 5, "key": k})
    wait_for(lambda: runs(k) == 1, message="the job to start")
    doomed.kill()
    start_worker([QUEUE], env={"JOBYARD_MAX_STALLED": "0"})
    wait_for(lambda: job.refresh().state == "failed", message="the stalled job to fail")
    assert job.failed_reason == "job stalled more than allowable limit (0)"
    assert runs(k) == 1
    assert [j.id for j in Queue(QUEUE).get_failed()] == [job.id]


def in_flight(job_id: str) -> int:
    """Deliveries of this job not yet acknowledged (tags are `<job id>#<n>`)."""
    return sum(1 for tag in get_redis().hkeys("unacked") if tag.decode().startswith(f"{job_id}#"))


def test_a_duplicate_delivery_does_not_run_a_job_twice(start_worker):
    k = key()
    job = enqueue(f"t-record.{QUEUE}", {"key": k})
    client = get_redis()
    normal = f"{QUEUE}:4"  # kombu's list for priority 5, the normal one
    (message,) = client.lrange(normal, 0, -1)
    client.lpush(normal, message, message)  # two more copies of the same delivery
    start_worker([QUEUE])
    assert job.wait_until_finished(timeout=30) == 1
    wait_for(lambda: broker_messages() == 0 and in_flight(job.id) == 0)
    assert runs(k) == 1
    # And a copy arriving after completion, as a late redelivery would, is ignored too.
    client.lpush(normal, message)
    wait_for(lambda: broker_messages() == 0 and in_flight(job.id) == 0)
    time.sleep(0.5)
    assert runs(k) == 1 and get_job(QUEUE, job.id).state == "completed"


def test_a_long_job_outliving_the_visibility_timeout_is_not_run_twice(start_worker):
    env = {"CELERY_BROKER_VISIBILITY_TIMEOUT": "1"}
    start_worker([QUEUE], concurrency=1, env=env)
    start_worker([QUEUE], concurrency=1, env=env)
    k = key()
    job = enqueue(f"t-sleep.{QUEUE}", {"seconds": 4, "key": k})
    assert job.wait_until_finished(timeout=30) == 4
    assert runs(k) == 1


def test_sigterm_lets_a_running_job_finish_and_takes_no_new_one(start_worker):
    worker = start_worker([QUEUE], concurrency=1, env={"WORKER_SHUTDOWN_GRACE": "20"})
    k = key()
    job = enqueue(f"t-sleep.{QUEUE}", {"seconds": 2, "key": k})
    wait_for(lambda: runs(k) == 1, message="the job to start")
    worker.process.terminate()
    later = enqueue(f"t-record.{QUEUE}", {"key": k})
    worker.process.wait(30)
    assert job.refresh().state == "completed"
    assert later.refresh().state == "waiting" and runs(k) == 1


def test_a_job_cut_off_by_the_shutdown_grace_is_not_lost(start_worker):
    worker = start_worker([QUEUE], concurrency=1, env={"WORKER_SHUTDOWN_GRACE": "1"})
    k = key()
    job = enqueue(f"t-sleep.{QUEUE}", {"seconds": 12, "key": k})
    wait_for(lambda: runs(k) == 1, message="the job to start")
    started = time.monotonic()
    worker.process.terminate()
    worker.process.wait(30)
    # Cut off after the 1 s grace, not waited for: the job alone would hold it 12 s (the
    # margin is for a loaded machine, not a speed target).
    assert time.monotonic() - started < 9
    start_worker([QUEUE], concurrency=1)
    assert job.wait_until_finished(timeout=45) == 12
    assert runs(k) == 2
