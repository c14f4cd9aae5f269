"""The celery-beat scheduler: `celery -A project beat -S tasks.scheduling.beat:JobyardScheduler`.

Schedules are django-celery-beat's rows in PostgreSQL (edited in the admin); this class
replaces only the loop that fires them: a leader lease in Redis so one beat fires at a
time, and tasks.scheduling.firing for exactly-once runs, misfires and DST.

CELERY_BEAT_SCHEDULE (`app.conf.beat_schedule`) is one more way in, never ignored: its
entries are checked when the beat starts (a bad one stops it, with the reason) and
installed as database schedules by the first beat that leads (tasks/scheduling/config.py).
"""

from __future__ import annotations

import contextlib
import uuid

import structlog
from celery.beat import Scheduler
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from redis.exceptions import RedisError

from tasks import scripts
from tasks.connection import process_name
from tasks.scheduling.config import BeatEntry, install_beat_schedule, read_beat_schedule
from tasks.scheduling.firing import fire_due

log = structlog.get_logger("jobyard.beat")


def hold_lease(owner: str, ttl_ms: int) -> bool:
    return scripts.lease("beat", owner, ttl_ms)


def release_lease(owner: str) -> None:
    scripts.release_lease("beat", owner)


def current_leader() -> str | None:
    """The beat holding the leader lease now (its owner name), or None: no beat fires."""
    return scripts.lease_holder("beat")


class JobyardScheduler(Scheduler):
    def __init__(self, *args, **kwargs) -> None:
        # host:pid, told apart from an earlier beat that had the same pid.
        self.owner = f"{process_name()}:{uuid.uuid4().hex[:6]}"
        self.leading = False
        #: CELERY_BEAT_SCHEDULE's entries, until they are installed in the database.
        self.pending: list[BeatEntry] = []
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        """No in-memory entries: the database is read on every step. CELERY_BEAT_SCHEDULE
        is checked here, so that a bad entry stops the beat at start with its reason
        (ImproperlyConfigured), and installed once this beat leads."""
        self.pending = read_beat_schedule(self.app.conf.beat_schedule or {})

    def sync(self) -> None:
        """Nothing to write back: every fired run is recorded when it fires."""

    @property
    def info(self) -> str:
        return f"jobyard: schedules in the database, leader lease {self._lease_ms() / 1000:g} s"

    def _lease_ms(self) -> int:
        return settings.JOBYARD["BEAT_LEASE_MS"]

    def tick(self, *args, **kwargs) -> float:
        lease = self._lease_ms()
        try:
            leading = hold_lease(self.owner, lease)
            if leading != self.leading:
                log.info("beat_leader" if leading else "beat_follower", owner=self.owner)
                self.leading = leading
            if not leading:
                return min(1.0, lease / 3000)
            close_old_connections()
            if self.pending:
                created, updated, kept = install_beat_schedule(self.pending)
                log.info("beat_schedule_installed", created=created, updated=updated, kept=kept)
                self.pending = []
            # Never sleep past a third of the lease: the lease must be renewed in time.
            return min(fire_due(), lease / 3000)
        except (DatabaseError, RedisError) as exc:
            log.warning("beat_step_failed", error=str(exc))
            close_old_connections()
            return 1.0

    def close(self) -> None:
        with contextlib.suppress(RedisError):
            release_lease(self.owner)
        super().close()
