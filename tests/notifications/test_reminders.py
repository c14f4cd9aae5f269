"""Reminders (issue #13): the next occurrence in the reminder's time zone across DST, one
job per occurrence that fires once (run twice, rescheduled, cancelled, deleted), the API,
and one end-to-end firing by a real worker."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

import tasks
from notifications import reminders
from notifications.models import Message, Reminder
from tasks.testing import run_enqueued, run_job
from tests.api.conftest import api, assert_error, make_token  # noqa: F401
from tests.conftest import wait_for

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def daily_at(at: time, tz: str, start: date, after: datetime, repeat="daily", interval=1):
    return reminders.next_occurrence(start, at, tz, repeat, interval, after=after)


def local(instant: datetime, tz: str) -> str:
    return instant.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


# --- the next occurrence, pure ------------------------------------------------------------


@pytest.mark.pure
@pytest.mark.parametrize(("tz", "days", "expected"), [
    # Berlin springs forward on 2026-03-29 (2:00 → 3:00) and falls back on 2026-10-25
    # (3:00 → 2:00): 3 a.m. exists both days, once.
    (BERLIN, ("2026-03-28", "2026-03-29", "2026-03-30"), (utc(2026, 3, 28, 2), utc(2026, 3, 29, 1), utc(2026, 3, 30, 1))),
    (BERLIN, ("2026-10-24", "2026-10-25", "2026-10-26"), (utc(2026, 10, 24, 1), utc(2026, 10, 25, 2), utc(2026, 10, 26, 2))),
    # New York: 2026-03-08 (2:00 → 3:00) and 2026-11-01 (2:00 → 1:00).
    (NEW_YORK, ("2026-03-07", "2026-03-08", "2026-03-09"), (utc(2026, 3, 7, 8), utc(2026, 3, 8, 7), utc(2026, 3, 9, 7))),
    (NEW_YORK, ("2026-10-31", "2026-11-01", "2026-11-02"), (utc(2026, 10, 31, 7), utc(2026, 11, 1, 8), utc(2026, 11, 2, 8))),
])  # fmt: skip
def test_a_3am_daily_reminder_fires_at_3am_local_across_dst(tz, days, expected):
    start = date.fromisoformat(days[0])
    fired, after = [], datetime.combine(start, time(0), ZoneInfo(tz))
    for _ in days:
        after = daily_at(time(3), tz, start, after)
        fired.append(after)
    assert fired == list(expected)
    assert [local(f, tz)[11:16] for f in fired] == ["03:00"] * 3


@pytest.mark.pure
def test_a_time_skipped_by_spring_forward_fires_when_the_clocks_jump():
    # 2:30 does not exist in Berlin on 2026-03-29: it fires at 3:00 CEST (01:00 UTC).
    start = date(2026, 3, 28)
    first = daily_at(time(2, 30), BERLIN, start, utc(2026, 3, 27))
    second = daily_at(time(2, 30), BERLIN, start, first)
    third = daily_at(time(2, 30), BERLIN, start, second)
    assert [local(x, BERLIN) for x in (first, second, third)] == [
        "2026-03-28 02:30 CET", "2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST"]  # fmt: skip
    assert local(daily_at(time(2, 30), NEW_YORK, date(2026, 3, 8), utc(2026, 3, 1)),
                 NEW_YORK) == "2026-03-08 03:00 EDT"  # fmt: skip


@pytest.mark.pure
def test_a_time_that_occurs_twice_fires_at_the_first():
    first = daily_at(time(1, 30), NEW_YORK, date(2026, 11, 1), utc(2026, 10, 1))
    assert first == utc(2026, 11, 1, 5, 30)  # 1:30 EDT, not 1:30 EST an hour later
    assert daily_at(time(1, 30), NEW_YORK, date(2026, 11, 1), first) == utc(2026, 11, 2, 6, 30)


@pytest.mark.pure
def test_weekly_every_n_days_and_once():
    start = date(2026, 3, 2)  # a Monday
    after = utc(2026, 3, 10)
    assert daily_at(time(9), BERLIN, start, after, "weekly") == utc(2026, 3, 16, 8)
    assert daily_at(time(9), BERLIN, start, after, "weekly", 2) == utc(2026, 3, 16, 8)
    assert daily_at(time(9), BERLIN, start, after, "daily", 3) == utc(2026, 3, 11, 8)
    assert daily_at(time(9), BERLIN, start, utc(2026, 3, 1), "none") == utc(2026, 3, 2, 8)
    assert daily_at(time(9), BERLIN, start, after, "none") is None


# --- firing once ---------------------------------------------------------------------------


def make(**fields) -> Reminder:
    now = timezone.now()
    values = {"recipient": "+12025550101", "template": "reminder", "context": {"title": "pills"},
              "channels": ["sms"], "at": (now + timedelta(hours=1)).time().replace(microsecond=0),
              "time_zone": "UTC", "start_date": now.date(), "repeat": "daily"}  # fmt: skip
    return reminders.schedule(Reminder(**{**values, **fields}))


def due_job(reminder: Reminder):
    reminder.refresh_from_db()
    return tasks.get_job("notifications", reminders.job_id(reminder, reminder.next_fire_at))


def fire_now(reminder: Reminder):
    """Run the occurrence's job as if it had come due."""
    reminder.refresh_from_db()
    return run_job("fire-reminder", {"reminder_id": reminder.pk,
                                     "occurrence": reminders.occurrence_key(reminder.next_fire_at),
                                     "version": reminder.version},
                   job_id=f"now-{reminder.pk}-{reminder.version}-{reminder.next_fire_at.timestamp()}")  # fmt: skip


@pytest.mark.django_db(transaction=True)  # the jobs go out on commit
def test_it_enqueues_one_delayed_job_per_occurrence_and_the_next_as_it_fires():
    reminder = make()
    job = due_job(reminder)
    assert (
        job.state == "delayed"
        and job.id == f"reminder-{reminder.pk}-{int(reminder.next_fire_at.timestamp())}"
    )
    occurrence = reminder.next_fire_at
    assert fire_now(reminder).returnvalue["fired"] is True
    reminder.refresh_from_db()
    assert reminder.last_fired_at == occurrence
    assert reminder.next_fire_at == occurrence + timedelta(days=1)
    assert due_job(reminder).state == "delayed"
    (message,) = Message.objects.all()
    assert (message.channel, message.recipient, message.body) == (
        "sms",
        "+12025550101",
        "Reminder: pills\n",
    )


@pytest.mark.django_db(transaction=True)  # the jobs go out on commit
def test_the_same_occurrence_run_twice_sends_once():
    reminder = make()
    data = {"reminder_id": reminder.pk, "occurrence": int(reminder.next_fire_at.timestamp())}
    assert run_job("fire-reminder", data, job_id="a").returnvalue["fired"] is True
    assert run_job("fire-reminder", data, job_id="b").returnvalue["fired"] is False
    assert Message.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # the jobs go out on commit
def test_a_rescheduled_occurrence_never_fires_and_the_new_one_does():
    reminder = make()
    old = {"reminder_id": reminder.pk, "occurrence": int(reminder.next_fire_at.timestamp())}
    reminder.at = (datetime.combine(date.today(), reminder.at) + timedelta(minutes=30)).time()
    reminders.schedule(reminder)
    assert run_job("fire-reminder", old, job_id="old").returnvalue["fired"] is False
    assert fire_now(reminder).returnvalue["fired"] is True
    assert Message.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # the jobs go out on commit
def test_rescheduled_away_and_back_it_fires_once_not_never():
    reminder = make()
    first_at, first_job = reminder.at, due_job(reminder)
    reminder.at = (datetime.combine(date.today(), first_at) + timedelta(minutes=30)).time()
    reminders.schedule(reminder)
    reminder.at = first_at
    reminders.schedule(reminder)  # back: enqueue finds the first occurrence's job, still delayed
    assert due_job(reminder).id == first_job.id and reminder.version == 3
    assert run_enqueued(first_job).returnvalue["fired"] is True
    assert Message.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # the jobs go out on commit
def test_cancelled_or_deleted_it_does_nothing():
    reminder = make()
    data = {"reminder_id": reminder.pk, "occurrence": int(reminder.next_fire_at.timestamp())}
    reminder.active = False
    reminders.schedule(reminder)
    assert reminder.next_fire_at is None
    assert run_job("fire-reminder", data, job_id="c").returnvalue["fired"] is False
    reminder.delete()
    assert run_job("fire-reminder", data, job_id="d").returnvalue == {
        "fired": False,
        "reason": "deleted",
    }
    assert not Message.objects.exists()


# --- the API -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the jobs go out on commit
def test_the_api_creates_reschedules_and_deletes(api):  # noqa: F811
    response = api.post_json("/api/v1/reminders", {
        "recipient": "+12025550101", "template": "reminder", "context": {"title": "pills"},
        "channels": ["sms"], "at": "03:00", "timeZone": BERLIN, "repeat": "daily",
        "startDate": "2030-04-01",
    })  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["nextFireAt"] == "2030-04-01T01:00:00+00:00" and body["version"] == 1
    pk = body["id"]
    assert tasks.get_job("notifications", f"reminder-{pk}-{int(utc(2030, 4, 1, 1).timestamp())}")

    response = api.patch(
        f"/api/v1/reminders/{pk}", {"at": "07:30"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["nextFireAt"], response.json()["version"]) == (
        "2030-04-01T05:30:00+00:00",
        2,
    )
    response = api.patch(
        f"/api/v1/reminders/{pk}", {"active": False}, content_type="application/json"
    )
    assert response.json()["nextFireAt"] is None
    assert api.delete(f"/api/v1/reminders/{pk}").status_code == 204
    assert_error(api.delete(f"/api/v1/reminders/{pk}"), 404, "reminder_not_found")


@pytest.mark.django_db(transaction=True)  # the jobs go out on commit
@pytest.mark.parametrize(("body", "field"), [
    ({"timeZone": "Mars/Olympus"}, "timeZone"),
    ({"recipient": "12025550101"}, "recipient"),
    ({"channels": ["pigeon"]}, "channels"),
    ({"template": "nope"}, "template"),
    ({"at": "25:00"}, "at"),
    ({"interval": 0}, "interval"),
    ({"colour": "red"}, "colour"),
])  # fmt: skip
def test_the_api_refuses_bad_input_naming_the_field(api, body, field):  # noqa: F811
    base = {"recipient": "+12025550101", "template": "reminder", "channels": ["sms"],
            "at": "09:00", "timeZone": "UTC", "repeat": "daily"}  # fmt: skip
    error = assert_error(api.post_json("/api/v1/reminders", {**base, **body}), 400)
    assert field in [f["field"] for f in error["fields"]]
    assert not Reminder.objects.exists()


# --- end to end ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_real_worker_fires_it_at_its_time_and_schedules_the_next(start_worker):
    start_worker(["notifications"])
    at = timezone.now().astimezone(ZoneInfo(BERLIN)) + timedelta(seconds=3)
    reminder = make(time_zone=BERLIN, at=at.time().replace(microsecond=0), start_date=at.date())
    due = reminder.next_fire_at
    message = wait_for(lambda: Message.objects.filter(state="sent").first(), 30,
                       message="the reminder's SMS to be sent")  # fmt: skip
    assert message.sent_at >= due and message.provider_id.startswith("console-")
    reminder.refresh_from_db()
    assert reminder.last_fired_at == due and reminder.next_fire_at == due + timedelta(days=1)
    assert due_job(reminder).state == "delayed"
    assert Message.objects.count() == 1


# --- the admin -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_admin_saves_reschedules_and_cancels(admin_client):
    assert admin_client.get("/admin/notifications/reminder/add/").status_code == 200
    form = {"recipient": "+12025550101", "template": "reminder", "context": '{"title": "x"}',
            "channels": '["sms"]', "at": "09:00:00", "time_zone": "Mars/Olympus",
            "start_date": "2030-04-01", "repeat": "daily", "interval": "1", "active": "on"}  # fmt: skip
    response = admin_client.post("/admin/notifications/reminder/add/", form)
    assert response.status_code == 200 and b"unknown time zone" in response.content
    response = admin_client.post(
        "/admin/notifications/reminder/add/", {**form, "time_zone": BERLIN}
    )
    assert response.status_code == 302
    reminder = Reminder.objects.get()
    assert (reminder.next_fire_at, reminder.version) == (utc(2030, 4, 1, 7), 1)
    assert due_job(reminder).state == "delayed"
    admin_client.post("/admin/notifications/reminder/", {
        "action": "cancel", "_selected_action": [reminder.pk]})  # fmt: skip
    reminder.refresh_from_db()
    assert not reminder.active and reminder.next_fire_at is None and reminder.version == 2
