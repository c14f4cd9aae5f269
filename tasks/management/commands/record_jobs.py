"""`python manage.py record_jobs`: the recorder process (Procfile `recorder`).

A loop around tasks.recorder.record_events, like healthchecks' sendalerts: one batch at a
time, waiting in Redis (not sleeping) while there is nothing to record. SIGTERM or SIGINT
ends it after the batch in hand is committed and acknowledged.
"""

from __future__ import annotations

import signal
import time

import structlog
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from tasks.recorder import record_events

log = structlog.get_logger("jobyard.recorder")

#: Seconds to wait after an error (Redis or PostgreSQL away), doubling up to the maximum:
#: the recorder outlives an outage instead of crash-looping through it.
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 30.0


class Command(BaseCommand):
    help = "Copy job state changes from the Redis event streams into the job archive."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="events per queue")
        parser.add_argument("--block-ms", type=int, default=1000, help="wait for events")
        parser.add_argument("--once", action="store_true", help="one batch, then exit")

    def handle(self, *args, batch_size: int, block_ms: int, once: bool, **options) -> None:
        self.stopping = False

        def stop(signum, frame) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("recorder started", batch_size=batch_size)
        delay = RETRY_FIRST_S
        total = 0
        while not self.stopping:
            close_old_connections()
            try:
                done = record_events(batch_size, block_ms=block_ms)
            except Exception:
                log.exception("recorder batch failed; retrying", retry_in_s=delay)
                self._sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            total += done
            if once:
                break
            if done == 0:
                # Another recorder has the turn, or nothing came within block_ms.
                self._sleep(block_ms / 1000 / 4)
        log.info("recorder stopped", recorded=total)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))
