"""How fast the recorder archives events: events and rows per second, one recorder.

    .venv/bin/python bench/recorder.py [--jobs 20000]

Starts a private Redis and PostgreSQL (as bin/test does) and measures two batches of work
with no worker running, so only the recorder is timed:
  1. enqueue: --jobs delayed jobs, one `delayed` event each: a new row per event, the
     job's hash read from Redis (the insert path);
  2. remove: each of them removed, one `removed` event each: the hash is gone, so the
     row is read and updated (the path of jobs that left the registry).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from project.localdev import private_services  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    args = parser.parse_args()
    with private_services("jobyard-bench-recorder-") as (redis, postgres, _):
        os.environ.update(
            DATABASE_URL=postgres.url(), REDIS_URL=redis.url, LOG_LEVEL="WARNING",
            DJANGO_SETTINGS_MODULE="project.settings", DEBUG="true",
            JOBYARD_EVENTS_MAXLEN=str(args.jobs * 2),
        )  # fmt: skip
        run(args.jobs)


def drain() -> tuple[int, float]:
    from tasks.recorder import record_events

    started, total = time.perf_counter(), 0
    while done := record_events(batch_size=500):
        total += done
    return total, time.perf_counter() - started


def run(jobs: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from tasks import Queue, enqueue_bulk
    from tasks.models import JobRecord

    call_command("migrate", verbosity=0)
    sent = enqueue_bulk([("ping", {}, {"delay": 3_600_000}) for _ in range(jobs)])
    events, took = drain()
    assert JobRecord.objects.count() == jobs
    print(f"enqueue: {events:,} events, {jobs:,} new rows in {took:.2f} s: "
          f"{events / took:,.0f} events/s")  # fmt: skip
    queue = Queue("default")
    for job in sent:
        queue.remove(job.id)
    events, took = drain()
    assert JobRecord.objects.filter(removed_at__isnull=False).count() == jobs
    print(f"remove: {events:,} events, {jobs:,} rows updated in {took:.2f} s: "
          f"{events / took:,.0f} events/s")  # fmt: skip


if __name__ == "__main__":
    main()
