"""Edits made in the admin's change form (Jobyard's Schedules page, posted by a logged-in
staff user) change what the beat fires at its next step, which is never more than a second
away: interval, crontab, start time, expiry, priority, queue, one-off, enabled.

The first tests drive the beat's step (fire_due) with a clock they move; the last one
edits a schedule under a running beat and a running worker."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from tasks import Queue, get_job
from tasks.scheduling.firing import fire_due
from tasks.scheduling.models import JobSchedule
from tasks.scheduling.service import install_schedule, run_job_id
from tests.conftest import wait_for
from tests.jobapp.beat_tasks import NAME as PLAIN
from tests.jobapp.beat_tasks import plain_runs
from tests.test_beat_rows import drain, sent

pytestmark = pytest.mark.django_db(transaction=True)
SCHEDULES = "/admin/scheduling/schedule/"


def _split(value: datetime | None) -> tuple[str, str]:
    if value is None:
        return "", ""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d"), value.strftime("%H:%M:%S")


def change(client, key: str, **fields) -> PeriodicTask:
    """Post schedule `key`'s change form as the admin shows it, with `fields` changed
    (start_time / expires as datetimes, interval / crontab as rows, booleans as such)."""
    task = PeriodicTask.objects.select_related("jobyard").get(name=key)
    extra = task.jobyard
    values = {
        "interval": task.interval, "crontab": task.crontab, "clocked": task.clocked,
        "start_time": task.start_time, "expires": task.expires, "one_off": task.one_off,
        "enabled": task.enabled, "priority": task.priority, "queue": task.queue or "",
        "expire_seconds": task.expire_seconds, **fields,
    }  # fmt: skip
    data = {
        "name": task.name, "regtask": task.task, "task": "", "description": task.description,
        "interval": values["interval"].pk if values["interval"] else "",
        "crontab": values["crontab"].pk if values["crontab"] else "",
        "clocked": values["clocked"].pk if values["clocked"] else "", "solar": "",
        "args": task.args, "kwargs": task.kwargs, "headers": task.headers or "{}",
        "queue": values["queue"], "exchange": "", "routing_key": "",
        "priority": "" if values["priority"] is None else str(values["priority"]),
        "expire_seconds": values["expire_seconds"] or "",
        "jobyard-TOTAL_FORMS": "1", "jobyard-INITIAL_FORMS": "1",
        "jobyard-MIN_NUM_FORMS": "0", "jobyard-MAX_NUM_FORMS": "1",
        "jobyard-0-periodic_task": str(task.pk), "jobyard-0-seconds": extra.seconds,
        "jobyard-0-every_ms": extra.every_ms or "", "jobyard-0-options": json.dumps(extra.options),
        "jobyard-0-misfire": extra.misfire,
    }  # fmt: skip
    for name in ("start_time", "expires"):
        data[f"{name}_0"], data[f"{name}_1"] = _split(values[name])
    for name in ("one_off", "enabled"):
        if values[name]:
            data[name] = "on"
    response = client.post(f"{SCHEDULES}{task.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:4000]
    task.refresh_from_db()
    return task


def plain(key: str, every: int = 3600, queue: str = "notifications", **fields) -> PeriodicTask:
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
    task = PeriodicTask.objects.create(name=key, task=PLAIN, args=json.dumps([key]),
                                       interval=interval, queue=queue, **fields)  # fmt: skip
    fire_due(timezone.now())  # the beat's first step: Jobyard's row, starting from now
    return task


def interval(seconds: int) -> IntervalSchedule:
    return IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")[0]


def ids() -> list[str]:
    """The ids of the runs sent to `notifications` so far (taken out as a worker would)."""
    _ran.extend(m["id"] for m in drain())
    return list(_ran)


_ran: list[str] = []


@pytest.fixture(autouse=True)
def _forget_runs():
    _ran.clear()


def due_of(job_id: str) -> datetime:
    return datetime.fromtimestamp(int(job_id.rsplit(".", 1)[1]) / 1000, UTC)


def test_an_edited_interval_or_crontab_fires_at_the_next_step(admin_client):
    plain("edited")
    change(admin_client, "edited", interval=interval(2))
    # Installed as every hour; the interval was edited and every_ms, left alone, follows it.
    assert JobSchedule.objects.get(periodic_task__name="edited").every_ms == 2000
    now = timezone.now()
    fire_due(now)  # the step that sees the edit: the schedule starts afresh from `now`
    fire_due(now + timedelta(seconds=2, milliseconds=100))
    assert ids() == [run_job_id("edited", now + timedelta(seconds=2))]

    every_minute = CrontabSchedule.objects.create(minute="*", hour="*", timezone="UTC")
    change(admin_client, "edited", interval=None, crontab=every_minute)
    now = timezone.now()
    fire_due(now)
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    fire_due(minute + timedelta(milliseconds=100))
    assert ids()[1:] == [run_job_id("edited", minute)]


def test_an_edited_start_time_holds_runs_until_it(admin_client):
    plain("starting", every=2)
    start = (timezone.now() + timedelta(seconds=30)).replace(microsecond=0)
    change(admin_client, "starting", start_time=start)
    for before in (25, 10, 1):
        fire_due(start - timedelta(seconds=before))
    assert ids() == []
    fire_due(start + timedelta(milliseconds=100))
    assert ids() == [run_job_id("starting", start)]  # an interval starts on its start time


def test_an_edited_expiry_disables_the_schedule(admin_client):
    plain("expiring", every=2)
    expires = (timezone.now() + timedelta(seconds=10)).replace(microsecond=0)
    change(admin_client, "expiring", expires=expires)
    fire_due(timezone.now() + timedelta(seconds=3))
    assert len(ids()) == 1
    fire_due(expires + timedelta(milliseconds=100))
    fire_due(expires + timedelta(seconds=5))
    assert len(ids()) == 1
    assert PeriodicTask.objects.get(name="expiring").enabled is False
    # expire_seconds instead: each message expires that long after it is sent.
    change(admin_client, "expiring", expires=None, expire_seconds=45, enabled=True)
    fire_due(expires + timedelta(seconds=8))
    assert len(sent()) == 1 and sent()[-1]["expires"]


def test_an_edited_priority_queue_or_one_off_changes_the_next_run(admin_client):
    plain("tuned", every=2)
    change(admin_client, "tuned", priority=7, queue="webhooks")
    fire_due(timezone.now() + timedelta(seconds=3))
    (message,) = sent("webhooks")
    assert (message["priority"], message["step"]) == (7, 7)
    change(admin_client, "tuned", one_off=True, queue="notifications")
    fire_due(timezone.now() + timedelta(seconds=3))
    fire_due(timezone.now() + timedelta(seconds=6))
    assert len(sent()) == 1  # once, then disabled as django-celery-beat does
    task = PeriodicTask.objects.get(name="tuned")
    assert task.enabled is False and task.one_off is True


def test_an_edited_priority_is_the_next_jobs_priority(admin_client):
    """A job type's run: Celery's priority 0..9 becomes Jobyard's 1..10."""
    install_schedule("job-prio", "t-echo.catalog", {"value": 1}, every="2s")
    change(admin_client, "job-prio", priority=0)
    fire_due(timezone.now() + timedelta(seconds=3))
    (run,) = Queue("catalog").get_jobs(["waiting"], 0, 9)
    assert get_job("catalog", run.id).opts["priority"] == 1
    run.remove()
    change(admin_client, "job-prio", priority=8)
    fire_due(timezone.now() + timedelta(seconds=6))
    (run,) = Queue("catalog").get_jobs(["waiting"], 0, 9)
    assert get_job("catalog", run.id).opts["priority"] == 9


@pytest.mark.slow
def test_admin_edits_reach_a_running_beat(admin_client, worker, start_beat):
    key = f"live-{time.time_ns()}"
    plain(key, every=3600, queue="reports")
    start_beat()
    time.sleep(2)
    assert plain_runs(key) == []  # every hour: nothing yet

    change(admin_client, key, interval=interval(1))
    wait_for(lambda: len(plain_runs(key)) >= 2, timeout=30, message="runs every second")

    change(admin_client, key, priority=2)
    wait_for(lambda: plain_runs(key)[-1]["priority"] == 2, timeout=30, message="priority 2")

    change(admin_client, key, one_off=True)
    wait_for(lambda: not PeriodicTask.objects.get(name=key).enabled, timeout=30)
    time.sleep(1.5)  # a step in flight may still have fired
    stopped = len(plain_runs(key))
    start = (timezone.now() + timedelta(seconds=3)).replace(microsecond=0)
    time.sleep(1)
    assert len(plain_runs(key)) == stopped, "a fired one-off kept firing"

    change(admin_client, key, one_off=False, enabled=True, start_time=start)
    wait_for(lambda: len(plain_runs(key)) > stopped, timeout=30, message="runs from the start")
    assert all(due_of(run["id"]) >= start for run in plain_runs(key)[stopped:])

    change(admin_client, key, expires=timezone.now())
    wait_for(lambda: not PeriodicTask.objects.get(name=key).enabled, timeout=30)
    time.sleep(1.5)
    expired = len(plain_runs(key))
    time.sleep(2)
    assert len(plain_runs(key)) == expired, "an expired schedule kept firing"
