"""The benchmark's job types: a no-op, one that records its enqueue-to-start latency, and
the soak's (bench/soak.py)."""

import os
import time

from django.conf import settings

from tasks import PermanentError, job_type
from tasks.connection import get_redis


@job_type("bench-noop", queue="default", attempts=1)
def noop(job) -> None:
    """Do nothing: measures the platform's own cost per job."""
    return None


@job_type("bench-stamp", queue="default", attempts=1)
def stamp(job, sent_at: float, list_key: str) -> None:
    """Push the ms from `sent_at` (taken just before enqueue) to this start onto `list_key`."""
    started = time.time()
    get_redis().rpush(list_key, (started - sent_at) * 1000.0)


@job_type("bench-http-wait", queue="default", attempts=1)
def http_wait(job, url: str) -> None:
    """One GET to a local server that answers in 20 ms (bench/io_wait.py)."""
    from bench.http_wait import get

    get(url)


def soak_work(job, seq: int, fail_times: int = 0, permanent: bool = False,
              sleep_ms: int = 0) -> int:  # fmt: skip
    """The soak's job (bench/soak.py): notes each run in SOAK_RUNS_FILE, outside Redis so
    that Redis restarts lose none, then fails or succeeds as told."""
    with open(os.environ["SOAK_RUNS_FILE"], "a") as runs:  # one short line: an atomic append
        runs.write(f"{job.id} {os.getpid()} {time.time():.3f} {job.attempts_made}\n")
    if sleep_ms:
        time.sleep(sleep_ms / 1000)
    if permanent:
        raise PermanentError("soak: this job fails for good")
    if job.attempts_made < fail_times:
        raise RuntimeError(f"soak: failure {job.attempts_made + 1} of {fail_times}")
    return seq


# One per queue: the soak loads every queue. Retries wait 1 s, whatever the policy default.
for _queue in settings.JOBYARD_QUEUES:
    job_type(f"soak.{_queue}", queue=_queue, attempts=5,
             backoff={"type": "fixed", "delay": 1000})(soak_work)  # fmt: skip
