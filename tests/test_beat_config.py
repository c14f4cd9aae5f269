"""CELERY_BEAT_SCHEDULE (app.conf.beat_schedule) is installed as database schedules by
setup_schedules and by the beat, or refused at start with its reason: never ignored."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from celery import current_app
from celery.schedules import crontab, schedule, solar
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from tasks import get_job
from tasks.scheduling.config import read_beat_schedule, read_entry
from tasks.scheduling.firing import fire_due
from tasks.scheduling.models import JobSchedule
from tasks.scheduling.patterns import Cron, Every, InvalidSchedule
from tests.conftest import runs, wait_for
from tests.jobapp.beat_tasks import NAME as PLAIN
from tests.jobapp.beat_tasks import plain_runs

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.pure
@pytest.mark.parametrize(
    ("value", "every_ms"),
    [(30, 30_000), (0.5, 500), (timedelta(minutes=5), 300_000),
     (schedule(timedelta(hours=2)), 7_200_000)],
)  # fmt: skip
def test_an_entry_in_seconds_a_timedelta_or_a_schedule_is_an_interval(value, every_ms):
    entry = read_entry("e", {"task": "ping", "schedule": value}, NOW)
    assert isinstance(entry.pattern, Every) and entry.pattern.every_ms == every_ms


@pytest.mark.pure
def test_a_crontab_entry_keeps_its_fields_and_zone():
    entry = read_entry("e", {"task": "ping", "schedule": crontab(minute=0, hour={1, 13},
                                                                 day_of_week="mon-fri")}, NOW)  # fmt: skip
    assert isinstance(entry.pattern, Cron)
    assert entry.pattern.expression == "0 1,13 * * mon-fri"
    assert str(entry.pattern.tz) == "UTC"


@pytest.mark.pure
def test_a_plain_tasks_entry_carries_celerys_options():
    entry = read_entry(
        "e",
        {"task": PLAIN, "schedule": 10, "args": ("k", 1), "kwargs": {"colour": "red"},
         "options": {"queue": "reports", "priority": 3, "expires": 30, "headers": {"a": 1}}},
        NOW,
    )  # fmt: skip
    assert (entry.args, entry.kwargs) == (["k", 1], {"colour": "red"})
    assert entry.execution == {
        "queue": "reports", "exchange": None, "routing_key": None, "priority": 3,
        "expire_seconds": 30, "headers": {"a": 1},
    }  # fmt: skip


@pytest.mark.pure
@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ({"task": "ping", "schedule": object.__new__(solar)}, "schedule", "solar schedules"),
        ({"task": "ping", "schedule": "daily"}, "schedule", "not a schedule"),
        ({"task": "ping", "schedule": 0.01}, "every", "at least 100 ms"),
        ({"task": "ping", "schedule": 10, "relative": True}, "relative", "not supported"),
        ({"task": "ping", "schedule": 10, "options": {"countdown": 5}}, "options.countdown",
         "not supported"),
        ({"task": "ping", "schedule": 10, "options": {"priority": 200}}, "priority",
         "0 (highest) to 9 (lowest)"),
        ({"task": "ping", "schedule": 10, "options": {"queue": "email"}}, "queue",
         "runs on queue 'default'"),
        ({"task": "ping", "schedule": 10, "args": [1]}, "args", "by name"),
        ({"task": "t-typed", "schedule": 10, "kwargs": {"count": "many"}}, "count", "integer"),
        ({"task": "nope", "schedule": 10}, "task", "neither a Jobyard job type"),
        ({"task": PLAIN, "schedule": 10, "args": ["k"], "options": {"queue": "celery"}},
         "queue", "unknown queue 'celery'"),
        ({"task": PLAIN, "schedule": 10, "args": ["k"], "options": {"attempts": 2}},
         "options.attempts", "plain Celery task"),
        ({"task": PLAIN, "schedule": 10}, "kwargs", "missing 1 required positional"),
        ({"task": PLAIN, "schedule": 10, "args": ["k"], "options": {"expires": datetime(2031, 1, 1)}},
         "options.expires", "time zone"),
    ],
)  # fmt: skip
def test_an_entry_the_beat_cannot_honour_is_refused_naming_the_field(entry, field, message):
    with pytest.raises((InvalidSchedule, ValueError)) as caught:
        read_entry("bad", entry, NOW)
    assert field in str(caught.value) and message in str(caught.value)


@pytest.mark.pure
def test_the_refusal_names_every_bad_entry():
    with pytest.raises(Exception, match="CELERY_BEAT_SCHEDULE refused") as caught:
        read_beat_schedule({
            "good": {"task": "ping", "schedule": 10},
            "one": {"task": "nope", "schedule": 10},
            "two": {"task": "ping", "schedule": 10, "options": {"link": "x"}},
        })  # fmt: skip
    assert "'one'" in str(caught.value) and "'two'" in str(caught.value)
    assert "'good'" not in str(caught.value)


ENTRIES = {
    "cfg-job": {"task": "t-echo.catalog", "schedule": 10.0, "kwargs": {"value": 1},
                "options": {"priority": 2, "attempts": 1}},
    "cfg-plain": {"task": PLAIN, "schedule": timedelta(seconds=10), "args": ["cfg-plain", 7],
                  "options": {"queue": "notifications", "priority": 3, "expires": 30}},
    "cfg-cron": {"task": "t-echo.catalog", "schedule": crontab(minute="*/5", hour="4")},
}  # fmt: skip


@pytest.fixture
def beat_schedule():
    """Sets the Celery app's beat_schedule (CELERY_BEAT_SCHEDULE) for the test."""
    before = current_app.conf.beat_schedule

    def set_to(entries: dict) -> None:
        current_app.conf.beat_schedule = entries

    yield set_to
    current_app.conf.beat_schedule = before


@pytest.mark.django_db
def test_setup_schedules_installs_the_entries_once_and_keeps_an_admin_edit(beat_schedule, capsys):
    beat_schedule(dict(ENTRIES))
    call_command("setup_schedules")
    assert "CELERY_BEAT_SCHEDULE: 3 created" in capsys.readouterr().out
    job = PeriodicTask.objects.get(name="cfg-job")
    assert (job.task, json.loads(job.kwargs), job.priority) == ("t-echo.catalog", {"value": 1}, 2)
    assert (job.interval.every, job.interval.period) == (10, "seconds")
    assert job.jobyard.options == {"attempts": 1}
    plain = PeriodicTask.objects.get(name="cfg-plain")
    assert (plain.task, json.loads(plain.args), plain.queue) == (
        PLAIN,
        ["cfg-plain", 7],
        "notifications",
    )
    assert (plain.priority, plain.expire_seconds) == (3, 30)
    cron = PeriodicTask.objects.get(name="cfg-cron")
    assert (cron.crontab.minute, cron.crontab.hour, cron.crontab.timezone.key) == (
        "*/5",
        "4",
        "UTC",
    )

    PeriodicTask.objects.filter(name="cfg-job").update(enabled=False, priority=0)  # the admin
    call_command("setup_schedules")
    assert "0 created (-), 0 updated (-), 3 unchanged" in capsys.readouterr().out
    job.refresh_from_db()
    assert (job.enabled, job.priority) == (False, 0)

    # Changed in the settings: installed again, the settings win.
    changed = {**ENTRIES, "cfg-job": {**ENTRIES["cfg-job"], "schedule": 20}}
    beat_schedule(changed)
    call_command("setup_schedules")
    assert "1 updated (cfg-job)" in capsys.readouterr().out
    job.refresh_from_db()
    assert (job.enabled, job.priority, job.interval.every) == (True, 2, 20)
    assert PeriodicTask.objects.filter(name__startswith="cfg-").count() == 3


@pytest.mark.django_db
def test_setup_schedules_refuses_a_bad_entry_and_installs_nothing(beat_schedule):
    beat_schedule({
        **ENTRIES, "sunrise": {"task": "ping", "schedule": object.__new__(solar)}})  # fmt: skip
    with pytest.raises(CommandError, match="'sunrise'.*solar schedules are not supported"):
        call_command("setup_schedules")
    assert not PeriodicTask.objects.filter(name__startswith="cfg-").exists()


@pytest.mark.django_db(transaction=True)
def test_installed_entries_fire_as_their_options_say(beat_schedule):
    from tests.test_beat_rows import sent

    beat_schedule(dict(ENTRIES))
    call_command("setup_schedules")
    now = datetime.now(UTC)
    JobSchedule.objects.update(anchor=now, last_tick=now)
    fire_due(now + timedelta(seconds=10, milliseconds=100))
    job_id = JobSchedule.objects.get(periodic_task__name="cfg-job").last_job_id
    job = get_job("catalog", job_id)
    assert (job.data, job.opts["priority"], job.opts["attempts"]) == ({"value": 1}, 3, 1)
    (message,) = sent()
    assert message["args"] == ["cfg-plain", 7] and message["priority"] == 3
    assert message["expires"] and message["id"].startswith("sched.cfg-plain.")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_beat_installs_the_settings_entries_and_fires_them(worker, start_beat, tmp_path):
    """JOBYARD_TEST_BEAT_SCHEDULE=fire: tests/settings.py's entries, in the beat alone."""
    for key in ("cfg-job", "cfg-plain"):
        forget(key)
    log = tmp_path / "beat.log"
    start_beat(output=log, env={"JOBYARD_TEST_BEAT_SCHEDULE": "fire"})
    wait_for(lambda: runs("cfg-job") >= 2, timeout=60, message="the job type's runs")
    wait_for(lambda: len(plain_runs("cfg-plain")) >= 2, timeout=30, message="the plain task's")
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {"cfg-job", "cfg-plain", "cfg-cron", "cfg-every"} <= names
    cron = PeriodicTask.objects.get(name="cfg-cron")
    assert (cron.crontab.minute, cron.crontab.hour) == ("0", "4")

    job_id = JobSchedule.objects.get(periodic_task__name="cfg-job").last_job_id
    assert get_job("email", job_id).opts["priority"] == 3  # Celery's 2, Jobyard's 3

    run = plain_runs("cfg-plain")[-1]
    assert run["id"].startswith("sched.cfg-plain.")
    assert (run["args"], run["kwargs"]) == ([7], {"colour": "red"})
    assert (run["queue"], run["priority"]) == ("reports", 3)
    assert run["expires"] and run["periodic_task_name"] == "cfg-plain"
    assert "beat_schedule_installed" in log.read_text()


def forget(key: str) -> None:
    """What an earlier run of the tests recorded under `key`."""
    from tasks.connection import get_redis

    get_redis().delete(f"{key}:runs", f"{key}:order", f"{key}:plain")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_beat_refuses_to_start_with_an_entry_it_cannot_honour(start_beat, tmp_path):
    log = tmp_path / "beat.log"
    beat = start_beat(output=log, env={"JOBYARD_TEST_BEAT_SCHEDULE": "refused"})
    assert beat.process.wait(timeout=60) != 0
    text = log.read_text()
    assert "CELERY_BEAT_SCHEDULE refused" in text
    assert "'cfg-unknown'" in text and "neither a Jobyard job type" in text
    assert "'cfg-countdown'" in text and "options.countdown" in text
    assert not PeriodicTask.objects.filter(name__startswith="cfg-").exists()
