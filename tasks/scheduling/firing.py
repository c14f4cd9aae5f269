"""One step of the beat: fire every schedule that is due, exactly once.

Exactly once, with two beats running or a beat dying mid-step:
- only the holder of a Redis lease fires (tasks/scheduling/beat.py); a dead holder's lease
  runs out after JOBYARD_BEAT_LEASE_MS and another beat takes over;
- each run's job id is derived from the schedule key and the run's due time, so firing a
  run twice (two holders for a moment, or a step interrupted between enqueue and the
  database update) finds the job the first firing created and creates nothing.

Misfires: a run is late when it is older than JOBYARD_BEAT_MISFIRE_GRACE_MS. After beat
was down, only the latest missed run of a schedule is considered, never one per missed
time; the schedule's policy fires it once ("once") or drops it ("skip").
Pile-ups: a run is skipped while the previous run's job has not started yet, but never
for long: a previous run that has not started within JOBYARD_SCHEDULE_STUCK_MS (a lost
message, a paused queue, a queue no worker serves) is stuck, and the schedule fires again
(logged as schedule_previous_run_stuck). A previous run that no longer exists never blocks.

What a row says is what fires (service.plan_for / target_of): a job type's run is enqueued
as a Jobyard job (priority mapped 0..9 -> 1..10); a plain Celery task is sent as
django-celery-beat sends it (args, kwargs, queue / exchange / routing key, priority,
expires, headers), with the run's id as its task id. Nothing fires before the start time;
at the expiry date the schedule is disabled; a one-off is disabled once it has fired.

Isolation: each schedule is one step of its own. Anything one raises (a pattern of an old
row that never fires, a bug) is logged as schedule_broken and recorded as the schedule's
last_error; the other schedules fire on time and the beat goes on. Only the loss of the
database or of Redis ends the step early (the beat retries it: tasks/scheduling/beat.py).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models import F
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tasks.enqueue import enqueue
from tasks.errors import JobyardError
from tasks.job import get_job
from tasks.scheduling.service import (
    describe_error,
    fingerprint,
    first_due_after,
    plan_for,
    run_job_id,
    target_of,
)

log = structlog.get_logger("jobyard.beat")
#: Job states in which the previous run has not started: the next one is not piled on.
NOT_STARTED = ("waiting", "delayed", "paused")
#: The database or Redis is gone: no schedule's fault, so the whole step is retried.
UNREACHABLE = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)


def fire_due(now: datetime | None = None) -> float:
    """Fire what is due at `now`; return seconds until the next run is due (at most 1 s,
    so that edits in the admin take effect within a second)."""
    from django_celery_beat.models import PeriodicTask

    now = now or timezone.now()
    sleep = 1.0
    tasks = PeriodicTask.objects.filter(enabled=True).select_related(
        "crontab", "interval", "clocked", "jobyard"
    )
    for task in tasks:
        try:
            upcoming = _step(task, now)
        except UNREACHABLE:
            raise
        except Exception as exc:  # one schedule's trouble is not the others'
            _record_broken(task, exc)
            continue
        if upcoming is not None:
            sleep = min(sleep, max((upcoming - now).total_seconds(), 0.0))
    return sleep


def _step(task: Any, now: datetime) -> datetime | None:
    """Fire schedule `task` if a run is due; return its next run (None: nothing to wait for)."""
    from django_celery_beat.models import PeriodicTask

    from tasks.scheduling.models import JobSchedule

    if task.expires is not None and now >= task.expires:
        # As django-celery-beat does: an expired schedule is disabled, not fired.
        PeriodicTask.objects.filter(pk=task.pk).update(enabled=False)
        log.info("schedule_expired", key=task.name, expires=task.expires.isoformat())
        return None
    extra = getattr(task, "jobyard", None)
    if extra is None:
        # Created in the admin without Jobyard's row: start from now, no backfill.
        extra, _ = JobSchedule.objects.get_or_create(
            periodic_task=task,
            defaults={"anchor": now, "last_tick": now, "fingerprint": fingerprint(task)},
        )
        task.jobyard = extra
    try:
        pattern, problem = plan_for(task), None
    except JobyardError as exc:
        pattern, problem = None, str(exc)
    seen = fingerprint(task, pattern, problem)
    if extra.fingerprint != seen:
        # Edited since the last step: restart from now instead of firing a past run.
        JobSchedule.objects.filter(pk=task.pk).update(
            last_tick=now, anchor=now, last_error="", fingerprint=seen
        )
        log.info("schedule_changed", key=task.name, pattern=seen)
        return None
    if pattern is None:
        _record_error(extra, problem)
        return None
    due = pattern.latest_at_or_before(now)
    if due is not None and task.start_time is not None and due < task.start_time:
        due = None  # nothing fires before the start time
    if due is not None and (extra.last_tick is None or due > extra.last_tick):
        _fire(task, extra, due, now)
    return first_due_after(task, pattern, now)


def lateness(now: datetime | None = None) -> dict[str, float]:
    """Per enabled schedule (its key), seconds since its latest due run that has not fired
    yet; 0 when it is up to date. What `_step` would fire now is late: a beat that is
    down, or stuck, shows here (/metrics: jobyard_schedule_lateness_seconds). Schedules
    without a readable pattern, edited since the beat last looked, or not started are 0."""
    from django_celery_beat.models import PeriodicTask

    now = now or timezone.now()
    found: dict[str, float] = {}
    rows = PeriodicTask.objects.filter(enabled=True).select_related(
        "crontab", "interval", "clocked", "jobyard"
    )
    for task in rows:
        found[task.name] = 0.0
        extra = getattr(task, "jobyard", None)
        if extra is None or extra.last_tick is None:
            continue
        try:
            pattern = plan_for(task)
            if extra.fingerprint != fingerprint(task, pattern, None):
                continue
            due = pattern.latest_at_or_before(now)
        except Exception:  # a broken row is reported by the beat (last_error), not here
            continue
        if due is None or (task.start_time is not None and due < task.start_time):
            continue
        if due > extra.last_tick:
            found[task.name] = max((now - due).total_seconds(), 0.0)
    return found


def _fire(task: Any, extra: Any, due: datetime, now: datetime) -> None:
    from django_celery_beat.models import PeriodicTask

    from tasks.scheduling.models import JobSchedule

    key = task.name
    grace = timedelta(milliseconds=settings.JOBYARD["BEAT_MISFIRE_GRACE_MS"])
    late = now - due > grace
    handled = JobSchedule.objects.filter(pk=task.pk)
    if late and extra.misfire == JobSchedule.Misfire.SKIP:
        log.info("schedule_run_skipped", key=key, due=due.isoformat(), reason="missed")
        handled.update(last_tick=due)
        return
    try:
        target = target_of(task, extra)
    except (JobyardError, ValueError) as exc:  # a row edited outside the admin's checks
        _run_failed(extra, due, exc)
        return
    if extra.last_job_id:
        # A plain task's run is found under its queue and task id once the transport
        # registers it; until then it is not found, and never blocks.
        previous = get_job(target.queue, extra.last_job_id)
        if previous is not None and previous.state in NOT_STARTED:
            waited_ms = _not_started_for_ms(previous)
            if waited_ms < settings.JOBYARD["SCHEDULE_STUCK_MS"]:
                log.info("schedule_run_skipped", key=key, due=due.isoformat(),
                         reason=f"previous run {previous.id} is still {previous.state}")  # fmt: skip
                handled.update(last_tick=due)
                return
            log.warning("schedule_previous_run_stuck", key=key, job_id=previous.id,
                        state=previous.state, waited_ms=waited_ms, due=due.isoformat())  # fmt: skip
    job_id = run_job_id(key, due)
    if target.declared is None:
        # The exactly-once run id is the task id: a run sent twice is one task.
        target.celery_task.apply_async(target.args, target.kwargs, task_id=job_id, **target.options)
    else:
        try:
            job_id = enqueue(target.name, target.kwargs,
                             **{**target.options, "job_id": job_id, "schedule": key}).id  # fmt: skip
        except (JobyardError, ValueError) as exc:  # bad parameters edited in the admin
            _run_failed(extra, due, exc)
            return
    handled.update(last_tick=due, last_job_id=job_id, last_error="")
    updates: dict[str, Any] = {"last_run_at": now, "total_run_count": F("total_run_count") + 1}
    if task.one_off:  # fires once, then is disabled (as django-celery-beat does)
        updates["enabled"] = False
    # update(), not save(): save() would mark every schedule changed for other beats.
    PeriodicTask.objects.filter(pk=task.pk).update(**updates)
    log.info("schedule_fired", key=key, job_id=job_id, task=target.name, queue=target.queue,
             due=due.isoformat(), late=late)  # fmt: skip


def _run_failed(extra: Any, due: datetime, exc: Exception) -> None:
    """The run due at `due` cannot be sent as the row stands: recorded, not retried."""
    from tasks.scheduling.models import JobSchedule

    _record_error(extra, str(exc))
    JobSchedule.objects.filter(pk=extra.pk).update(last_tick=due)
    log.error("schedule_run_failed", key=extra.periodic_task.name, due=due.isoformat(),
              error=str(exc))  # fmt: skip


def _not_started_for_ms(job: Any) -> int:
    """How long a run that has not started has been waiting to start, in ms on the wall
    clock (the job's own timestamps are wall-clock ms): since it was created or its last
    attempt started; a delayed run, since its delay ends (negative until then)."""
    if job.state == "delayed" and job.delay_until:
        since = job.delay_until
    else:
        since = max(job.created_at or 0, job.processed_on or 0)
    return int(time.time() * 1000) - since


def _record_broken(task: Any, exc: Exception) -> None:
    """Log and record what one schedule raised; logged once while the error stays the same."""
    from tasks.scheduling.models import JobSchedule

    message = describe_error(exc)[:2000]
    extra = getattr(task, "jobyard", None)
    if extra is not None and extra.last_error == message:
        return
    log.error("schedule_broken", key=task.name, error=message,
              exc_info=not isinstance(exc, JobyardError))  # fmt: skip
    try:
        JobSchedule.objects.filter(pk=task.pk).update(last_error=message)
    except UNREACHABLE:
        raise
    except Exception as failed:  # e.g. the row itself is the problem: the log must do
        log.error("schedule_broken_unrecorded", key=task.name, error=str(failed))


def _record_error(extra: Any, message: str) -> None:
    from tasks.scheduling.models import JobSchedule

    if extra.last_error != message:
        JobSchedule.objects.filter(pk=extra.pk).update(last_error=message)
        log.error("schedule_invalid", key=extra.periodic_task.name, error=message)
