"""One beat step at a time, with a clock the test moves: runs, misfires, pile-ups, edits."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django_celery_beat.models import PeriodicTask

from tasks import Queue, enqueue, get_job
from tasks.scheduling.firing import fire_due
from tasks.scheduling.models import JobSchedule
from tasks.scheduling.service import install_schedule, list_schedules, run_job_id

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def install(key="every-10s", **spec):
    spec = spec or {"cron": "*/10 * * * * *"}
    task, created = install_schedule(key, "t-echo.catalog", {"value": key}, **spec)
    assert created
    JobSchedule.objects.filter(pk=task.pk).update(anchor=T0, last_tick=T0, fingerprint=_fp(task))
    return task


def _fp(task):
    from tasks.scheduling.service import fingerprint

    task.refresh_from_db()
    return fingerprint(task)


def runs_of(key: str) -> list:
    return [
        j for j in Queue("catalog").get_jobs(["waiting"], 0, 999) if j.opts.get("schedule") == key
    ]


def test_each_due_run_becomes_one_job_with_its_own_id_and_the_schedule_key():
    install()
    fire_due(T0 + timedelta(seconds=5))
    assert runs_of("every-10s") == []
    fire_due(T0 + timedelta(seconds=10))
    fire_due(T0 + timedelta(seconds=10, milliseconds=400))  # same run: nothing new
    (first,) = runs_of("every-10s")
    assert first.id == run_job_id("every-10s", T0 + timedelta(seconds=10))
    assert first.data == {"value": "every-10s"}
    assert get_job("catalog", first.id).to_dict()["schedule"] == "every-10s"
    first.remove()  # as if a worker had run it
    fire_due(T0 + timedelta(seconds=20))
    assert [j.id for j in runs_of("every-10s")] == [
        run_job_id("every-10s", T0 + timedelta(seconds=20))
    ]
    assert PeriodicTask.objects.get(name="every-10s").total_run_count == 2


def test_firing_the_same_run_twice_creates_one_job():
    """What two beats, or a beat that died before recording a run, would do."""
    task = install()
    fire_due(T0 + timedelta(seconds=10))
    JobSchedule.objects.filter(pk=task.pk).update(last_tick=T0)  # as if never recorded
    fire_due(T0 + timedelta(seconds=10, milliseconds=100))
    assert len(runs_of("every-10s")) == 1


def test_after_downtime_a_schedule_fires_once_not_once_per_missed_run():
    install("once-policy", cron="* * * * *")
    install("skip-policy", cron="* * * * *")
    JobSchedule.objects.filter(periodic_task__name="skip-policy").update(misfire="skip")
    # Beat was down five minutes; the latest run (12:05:00) is 45 s late, past the grace.
    fire_due(T0 + timedelta(minutes=5, seconds=45))
    caught_up = runs_of("once-policy")
    assert [j.id for j in caught_up] == [run_job_id("once-policy", T0 + timedelta(minutes=5))]
    assert runs_of("skip-policy") == []
    fire_due(T0 + timedelta(minutes=6, seconds=1))  # back on time: the skip policy fires
    assert len(runs_of("skip-policy")) == 1


def test_a_run_is_not_piled_on_a_previous_one_still_waiting():
    install()
    fire_due(T0 + timedelta(seconds=10))
    fire_due(T0 + timedelta(seconds=20))  # nobody consumes catalog: run 1 is still waiting
    assert len(runs_of("every-10s")) == 1
    first = runs_of("every-10s")[0]
    get_job("catalog", first.id).remove()
    fire_due(T0 + timedelta(seconds=30))
    assert [j.id for j in runs_of("every-10s")] == [
        run_job_id("every-10s", T0 + timedelta(seconds=30))
    ]


def test_intervals_and_one_offs_fire_and_a_one_off_then_stops():
    install("every-1500ms", every="every 1500ms")
    install("new-year", at="2030-01-01T12:00:04Z")
    fire_due(T0 + timedelta(seconds=4, milliseconds=100))
    assert [j.id for j in runs_of("every-1500ms")] == [
        run_job_id("every-1500ms", T0 + timedelta(seconds=3))
    ]
    assert len(runs_of("new-year")) == 1
    task = PeriodicTask.objects.get(name="new-year")
    assert task.enabled is False and task.total_run_count == 1
    fire_due(T0 + timedelta(days=1))
    assert len(runs_of("new-year")) == 1


def test_an_edited_pattern_starts_afresh_and_a_disabled_schedule_stops():
    task = install()
    task.crontab.minute = "*/5"  # edited in the admin: every 10 s of every 5th minute
    task.crontab.save()
    fire_due(T0 + timedelta(seconds=50))  # the edit is seen: no backfill of older runs
    assert runs_of("every-10s") == []
    fire_due(T0 + timedelta(minutes=5))
    assert len(runs_of("every-10s")) == 1
    PeriodicTask.objects.filter(pk=task.pk).update(enabled=False)
    Queue("catalog").clean(0, 1000, "waiting")
    fire_due(T0 + timedelta(minutes=10))
    assert runs_of("every-10s") == []


def test_bad_parameters_edited_in_the_admin_are_recorded_not_fired():
    task = install()
    PeriodicTask.objects.filter(pk=task.pk).update(kwargs='{"colour": "red"}')
    fire_due(T0 + timedelta(seconds=10))
    assert runs_of("every-10s") == []
    listed = {s["key"]: s for s in list_schedules()}
    assert "colour" in listed["every-10s"]["lastError"]


def test_install_refuses_bad_schedules_naming_the_field_and_writes_nothing():
    from tasks import InvalidJobData, UnknownJobType
    from tasks.scheduling.patterns import InvalidSchedule

    cases = [
        ({"cron": "61 * * * *"}, InvalidSchedule, "minute"),
        ({"cron": "0 0 * * *", "timezone_name": "Mars/Olympus"}, InvalidSchedule, "timezone"),
        ({}, InvalidSchedule, "pattern"),
        ({"cron": "0 0 * * *", "every": "1s"}, InvalidSchedule, "pattern"),
    ]
    for spec, error, field in cases:
        with pytest.raises(error, match=field):
            install_schedule("bad", "t-echo.catalog", {}, **spec)
    with pytest.raises(UnknownJobType):
        install_schedule("bad", "nope", {}, cron="0 0 * * *")
    with pytest.raises(InvalidJobData, match="count"):
        install_schedule("bad", "t-typed", {}, cron="0 0 * * *")
    assert not PeriodicTask.objects.filter(name="bad").exists()


@pytest.mark.django_db(transaction=True)
def test_schedule_recurring_installs_a_schedule_through_the_job_system(worker):
    job = enqueue("schedule-recurring", {"key": "nightly-ping", "target": "ping",
                                         "pattern": "0 2 * * *", "timezone": "Europe/Paris"})  # fmt: skip
    result = job.wait_until_finished(timeout=30)
    assert result["key"] == "nightly-ping" and result["created"] is True
    listed = {s["key"]: s for s in list_schedules()}["nightly-ping"]
    assert (listed["pattern"], listed["timezone"]) == ("0 2 * * *", "Europe/Paris")
    assert (
        datetime.fromtimestamp(listed["next"] / 1000, UTC)
        .astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
        .hour
        == 2
    )


def test_schedule_recurring_refuses_a_bad_pattern_at_enqueue():
    from tasks import InvalidJobData

    with pytest.raises(InvalidJobData, match="day of week"):
        enqueue("schedule-recurring", {"key": "k", "target": "ping", "pattern": "0 0 * * funday"})
    with pytest.raises(InvalidJobData, match="count"):
        enqueue("schedule-recurring", {"key": "k", "target": "t-typed", "pattern": "0 0 * * *"})


def insert_february_30th(key="feb-30"):
    """A schedule as an old row would hold it: written past today's validation."""
    from django_celery_beat.models import CrontabSchedule

    never = CrontabSchedule.objects.create(
        minute="0", hour="0", day_of_month="30", month_of_year="2", timezone="UTC"
    )
    return PeriodicTask.objects.create(
        name=key, task="t-echo.catalog", kwargs='{"value": 1}', crontab=never
    )


def test_a_schedule_that_never_fires_is_marked_broken_and_the_others_fire():
    insert_february_30th()
    install()
    fire_due(T0 + timedelta(seconds=10))  # raised CroniterBadDateError out of the step
    assert [j.id for j in runs_of("every-10s")] == [
        run_job_id("every-10s", T0 + timedelta(seconds=10))
    ]
    broken = JobSchedule.objects.get(periodic_task__name="feb-30")
    assert "never fires" in broken.last_error
    listed = {s["key"]: s for s in list_schedules()}
    assert listed["feb-30"]["next"] is None
    assert "never fires" in listed["feb-30"]["lastError"]
    assert listed["every-10s"]["next"] and listed["every-10s"]["lastError"] == ""


def test_a_broken_schedule_is_listed_before_the_beat_saw_it():
    insert_february_30th()
    (listed,) = list_schedules("catalog")
    assert (listed["key"], listed["pattern"], listed["next"]) == ("feb-30", "0 0 30 2 *", None)
    assert "never fires" in listed["lastError"]


def test_an_error_in_one_schedule_is_recorded_and_the_others_fire(monkeypatch):
    from tasks.scheduling import firing

    install("boom")
    install("fine")

    def enqueue(name, data, **options):
        if options["schedule"] == "boom":
            raise RuntimeError("kaput")
        return real_enqueue(name, data, **options)

    real_enqueue = firing.enqueue
    monkeypatch.setattr(firing, "enqueue", enqueue)
    fire_due(T0 + timedelta(seconds=10))
    assert len(runs_of("fine")) == 1 and runs_of("boom") == []
    assert JobSchedule.objects.get(periodic_task__name="boom").last_error == "RuntimeError: kaput"
    assert {s["key"]: s for s in list_schedules()}["boom"]["lastError"] == "RuntimeError: kaput"

    monkeypatch.setattr(firing, "enqueue", real_enqueue)  # fixed: it fires and is clean again
    fire_due(T0 + timedelta(seconds=20))
    assert len(runs_of("boom")) == 1
    assert JobSchedule.objects.get(periodic_task__name="boom").last_error == ""


def test_a_previous_run_stuck_waiting_blocks_its_schedule_only_for_a_while(settings):
    settings.JOBYARD = {**settings.JOBYARD, "SCHEDULE_STUCK_MS": 1000}
    install()
    fire_due(T0 + timedelta(seconds=10))  # nobody consumes catalog: run 1 waits for ever
    fire_due(T0 + timedelta(seconds=20))  # not piled on
    assert len(runs_of("every-10s")) == 1
    time.sleep(1.1)  # the bound is measured on the wall clock, from the job's own timestamps
    fire_due(T0 + timedelta(seconds=30))
    assert sorted(j.id for j in runs_of("every-10s")) == sorted(
        run_job_id("every-10s", T0 + timedelta(seconds=s)) for s in (10, 30)
    )
    fire_due(T0 + timedelta(seconds=40))  # the new run is the previous one now: it blocks
    assert len(runs_of("every-10s")) == 2


def test_a_delayed_previous_run_is_not_stuck_before_its_delay_ends(settings):
    settings.JOBYARD = {**settings.JOBYARD, "SCHEDULE_STUCK_MS": 1000}
    install(cron="*/10 * * * * *")
    JobSchedule.objects.filter(periodic_task__name="every-10s").update(options={"delay": 60_000})
    fire_due(T0 + timedelta(seconds=10))
    time.sleep(1.1)
    fire_due(T0 + timedelta(seconds=20))
    delayed = Queue("catalog").get_jobs(["delayed"], 0, 99)
    assert [j.id for j in delayed] == [run_job_id("every-10s", T0 + timedelta(seconds=10))]
