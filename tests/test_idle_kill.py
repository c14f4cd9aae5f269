"""Workers killed while idle lose no job; a job whose message is gone is sent again."""

from __future__ import annotations

import random
import threading
import time

import pytest

from tasks import Queue, enqueue, get_job, keys, scripts
from tasks.connection import get_redis
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "notifications"  # no shared test worker consumes it


def drop_messages(queue: str) -> None:
    get_redis().delete(*keys.broker_lists(queue))


def test_reconcile_sends_again_a_waiting_job_whose_message_is_gone():
    kept = enqueue(f"t-echo.{QUEUE}", {"value": 1})
    # A busy queue (a message in its lists) is left alone, however old its waiting jobs.
    assert scripts.reconcile([QUEUE], grace_ms=0) == []
    drop_messages(QUEUE)  # lost, as by a consumer killed between its pop and its claim
    Queue(QUEUE).pause()
    assert scripts.reconcile([QUEUE], grace_ms=0) == []  # paused: its jobs wait by design
    Queue(QUEUE).resume()
    drop_messages(QUEUE)  # resume sent nothing: the job was not parked
    assert scripts.reconcile([QUEUE], grace_ms=60_000) == []  # not waiting that long yet
    assert scripts.reconcile([QUEUE], grace_ms=0) == [kept.id]
    assert get_redis().llen(keys.broker_list(QUEUE, 4)) == 1  # its message is back
    assert scripts.reconcile([QUEUE], grace_ms=1000) == []  # and its wait starts again
    assert get_job(QUEUE, kept.id).state == "waiting"


def test_a_worker_runs_a_job_whose_message_was_lost(start_worker):
    job = enqueue(f"t-echo.{QUEUE}", {"value": "found"})
    drop_messages(QUEUE)
    start_worker([QUEUE], concurrency=1)
    # Found once the test settings' grace (3 s) has passed, then run as any other job.
    assert job.wait_until_finished(timeout=30) == "found"


@pytest.mark.slow
def test_jobs_trickled_to_idle_workers_killed_again_and_again_are_all_run(start_worker):
    """~100 jobs/s to two mostly idle workers, one SIGKILLed every 1.5-3 s (issue 10.1)."""
    env = {"JOBYARD_MAX_STALLED": "1000"}  # a job cut off twice is run again, not failed
    workers = [start_worker([QUEUE], concurrency=1, pool="solo", env=env) for _ in range(2)]
    total, sent, done = 5000, [], threading.Event()

    def trickle() -> None:
        for i in range(total):
            # Kept when completed (the default keeps 100), so each can be checked below.
            sent.append(enqueue(f"t-echo.{QUEUE}", {"value": i}, remove_on_complete=False).id)
            time.sleep(0.01)
        done.set()

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    kills = 0
    rng = random.Random(10)
    while not done.is_set():
        time.sleep(rng.uniform(1.5, 3.0))
        victim = rng.randrange(len(workers))
        workers[victim].kill()
        kills += 1
        workers[victim] = start_worker([QUEUE], concurrency=1, pool="solo", env=env, wait=False)
    sender.join()
    assert kills >= 20 and len(sent) == total

    def unfinished() -> list[str]:
        pipe = get_redis().pipeline(transaction=False)
        for job_id in sent:
            pipe.hget(keys.job(QUEUE, job_id), "state")
        return [i for i, s in zip(sent, pipe.execute(), strict=True) if s != b"completed"]

    wait_for(lambda: not unfinished(), timeout=60, interval=0.5, message="every job completed")
