"""The benchmark's job types: a no-op, and one that records its enqueue-to-start latency."""

import time

from tasks import job_type
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
