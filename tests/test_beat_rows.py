"""What a PeriodicTask row says is what the beat fires, one step at a time with a clock the
test moves: a plain Celery task is sent as django-celery-beat sends it (with the run's id
as its task id); start time, expiry, one-off, priority and queue are honoured.

Plain tasks go to `notifications`, a queue no shared worker consumes, so each test reads
the messages the beat sent straight from the broker lists."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tasks import Queue, get_job, keys
from tasks.connection import get_redis
from tasks.messages import read as read_message
from tasks.scheduling.firing import fire_due
from tasks.scheduling.models import JobSchedule
from tasks.scheduling.service import fingerprint, jobyard_priority, list_schedules, run_job_id
from tests.jobapp.beat_tasks import NAME as PLAIN

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def sent(queue: str = "notifications") -> list[dict]:
    """The Celery messages waiting in `queue`, oldest first: id, task, args, kwargs,
    priority, expires, headers."""
    client = get_redis()
    messages = []
    for step, key in enumerate(keys.broker_lists(queue)):
        for raw in reversed(client.lrange(key, 0, -1)):  # LPUSH: the oldest is last
            message = read_message(raw, client)  # a job's lean token, resolved
            headers = message["headers"]
            args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            messages.append(
                {
                    "id": headers["id"],
                    "task": headers["task"],
                    "args": args,
                    "kwargs": kwargs,
                    "step": step,
                    "expires": headers.get("expires"),
                    "priority": message["properties"].get("priority"),
                    "headers": headers,
                }  # fmt: skip
            )
    return messages


def drain(queue: str = "notifications") -> list[dict]:
    """The messages sent so far, taken out of `queue` as a worker takes them (with their
    jobs, where the registry has them): no later run waits behind them as a pile-up."""
    messages = sent(queue)
    get_redis().delete(*keys.broker_lists(queue))
    for message in messages:
        job = get_job(queue, message["id"])
        if job is not None:
            job.remove()
    return messages


def periodic(key: str, task: str = PLAIN, every: int = 10, **fields) -> PeriodicTask:
    """A row as the admin or a script writes it, its Jobyard row anchored at T0."""
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
    if task == PLAIN:
        fields.setdefault("args", json.dumps([key]))
    row = PeriodicTask.objects.create(name=key, task=task, interval=interval, **fields)
    JobSchedule.objects.create(periodic_task=row, anchor=T0, last_tick=T0)
    row.refresh_from_db()
    JobSchedule.objects.filter(pk=row.pk).update(fingerprint=fingerprint(row))
    return row


def test_a_plain_celery_task_is_sent_as_celery_beat_sends_it_with_the_run_id():
    periodic(
        "plain", args=json.dumps(["plain-key", 7]), kwargs=json.dumps({"colour": "red"}),
        queue="notifications", priority=3, expire_seconds=60,
        headers=json.dumps({"tenant": "t1"}),
    )  # fmt: skip
    fire_due(T0 + timedelta(seconds=5))
    assert sent() == []
    fire_due(T0 + timedelta(seconds=10, milliseconds=300))
    (message,) = sent()
    due = T0 + timedelta(seconds=10)
    assert message["id"] == run_job_id("plain", due)
    assert (message["task"], message["args"], message["kwargs"]) == (
        PLAIN, ["plain-key", 7], {"colour": "red"}
    )  # fmt: skip
    assert message["priority"] == 3 and message["step"] == 3
    assert message["expires"]  # expire_seconds: the message expires 60 s after it is sent
    assert message["headers"]["periodic_task_name"] == "plain"
    assert message["headers"]["tenant"] == "t1"
    row = PeriodicTask.objects.get(name="plain")
    assert row.total_run_count == 1 and row.last_run_at is not None
    assert row.jobyard.last_job_id == message["id"] and row.jobyard.last_error == ""
    # The same run fired again (two beats, or a beat that died before recording it): the
    # same task id, so the registry makes it one task.
    JobSchedule.objects.filter(pk=row.pk).update(last_tick=T0)
    fire_due(T0 + timedelta(seconds=10, milliseconds=600))
    assert {m["id"] for m in sent()} == {run_job_id("plain", due)}
    assert [s["queue"] for s in list_schedules() if s["key"] == "plain"] == ["notifications"]


def test_an_unknown_task_or_a_queue_outside_jobyard_is_recorded_not_sent():
    periodic("ghost", task="jobapp.no-such-task")
    periodic("elsewhere", queue="celery-default")
    fire_due(T0 + timedelta(seconds=10))
    assert sent() == [] and sent("celery-default") == []
    periodic("no-key", args="[]")
    fire_due(T0 + timedelta(seconds=20))
    assert sent() == [] and sent("celery-default") == []
    errors = {s["key"]: s["lastError"] for s in list_schedules()}
    assert "neither a Jobyard job type nor a registered Celery task" in errors["ghost"]
    assert "unknown queue 'celery-default'" in errors["elsewhere"]
    assert "missing 1 required positional argument: 'key'" in errors["no-key"]


def test_nothing_fires_before_the_start_time_and_an_interval_starts_on_it():
    start = T0 + timedelta(seconds=25)
    periodic("later", queue="notifications", start_time=start)
    for second in (10, 20, 24):
        fire_due(T0 + timedelta(seconds=second))
    assert sent() == []
    fire_due(start)
    ran = drain()
    fire_due(T0 + timedelta(seconds=35))
    assert [m["id"] for m in ran + drain()] == [
        run_job_id("later", start),
        run_job_id("later", start + timedelta(seconds=10)),
    ]
    listed = {s["key"]: s for s in list_schedules()}["later"]
    assert listed["next"] is not None


def test_an_expired_schedule_is_disabled_and_fires_no_more():
    periodic("expiring", queue="notifications", expires=T0 + timedelta(seconds=15))
    fire_due(T0 + timedelta(seconds=10))
    assert len(sent()) == 1
    message = sent()[0]
    assert message["expires"]  # the date is the message's expiry too, as celery-beat sends it
    fire_due(T0 + timedelta(seconds=20))
    assert len(sent()) == 1
    assert PeriodicTask.objects.get(name="expiring").enabled is False


def test_a_one_off_interval_fires_once_then_is_disabled():
    periodic("once", queue="notifications", one_off=True)
    fire_due(T0 + timedelta(seconds=10))
    fire_due(T0 + timedelta(seconds=20))
    assert [m["id"] for m in sent()] == [run_job_id("once", T0 + timedelta(seconds=10))]
    row = PeriodicTask.objects.get(name="once")
    assert row.enabled is False and row.total_run_count == 1
    assert {s["key"]: s for s in list_schedules()}["once"]["next"] is None


def runs_of(key: str, queue: str = "catalog") -> list:
    return [j for j in Queue(queue).get_jobs(["waiting"], 0, 999) if j.opts.get("schedule") == key]


@pytest.mark.parametrize(("priority", "expected"), [(0, 1), (4, 5), (9, 10)])
def test_a_job_types_run_gets_the_priority_mapped_to_jobyards(priority, expected):
    periodic("prio", task="t-echo.catalog", priority=priority)
    fire_due(T0 + timedelta(seconds=10))
    (run,) = runs_of("prio")
    assert get_job("catalog", run.id).opts["priority"] == expected == jobyard_priority(priority)


def test_a_job_type_row_contradicting_its_job_is_recorded_not_fired():
    """Rows written past the admin form's checks: nothing is silently dropped."""
    cases = {
        "other-queue": ({"queue": "email"}, "runs on queue 'catalog'"),
        "positional": ({"args": "[1]"}, "takes its parameters by name"),
        "expiring-job": ({"expire_seconds": 30}, "do not expire"),
        "two-priorities": ({"priority": 1}, "contradicts the Jobyard options' priority 7"),
    }
    for key, (fields, _) in cases.items():
        periodic(key, task="t-echo.catalog", **fields)
    JobSchedule.objects.filter(periodic_task__name="two-priorities").update(options={"priority": 7})
    fire_due(T0 + timedelta(seconds=10))
    errors = {s["key"]: s["lastError"] for s in list_schedules()}
    for key, (_, message) in cases.items():
        assert runs_of(key) == [] and runs_of(key, "email") == []
        assert message in errors[key], (key, errors[key])


def test_the_interval_row_is_what_fires_not_a_hidden_every_ms():
    """The list said every 15 s while the beat fired every 10 s (every_ms overrode it)."""
    row = periodic("fifteen", task="t-echo.catalog", every=15)
    JobSchedule.objects.filter(pk=row.pk).update(every_ms=10_000)
    fire_due(T0 + timedelta(seconds=10))
    assert runs_of("fifteen") == []
    fire_due(T0 + timedelta(seconds=15))
    assert [j.id for j in runs_of("fifteen")] == [run_job_id("fifteen", T0 + timedelta(seconds=15))]
    assert {s["key"]: s for s in list_schedules()}["fifteen"]["pattern"] == "every 15s"


def test_the_migration_aligns_every_ms_with_the_interval_that_fires():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("tasks.scheduling.migrations.0002_beat_one_source_of_truth")
    row = periodic("fifteen", task="t-echo.catalog", every=15)
    JobSchedule.objects.filter(pk=row.pk).update(every_ms=10_000)
    migration.every_ms_follows_the_interval(apps, None)
    assert JobSchedule.objects.get(pk=row.pk).every_ms == 15_000
