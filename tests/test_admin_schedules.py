"""Schedules in the admin (django-celery-beat's periodic tasks): the list shows each next
run; declaring one runs the same checks as from code, with errors on their field.

admin_client is pytest-django's: a superuser, logged in."""

import json

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from tasks.scheduling.service import list_schedules, next_run

pytestmark = pytest.mark.django_db


def test_the_schedule_list_shows_each_next_run(admin_client):
    crontab = CrontabSchedule.objects.create(minute="0", hour="0", day_of_week="0")
    weekly = PeriodicTask.objects.create(name="weekly-ping", task="ping", crontab=crontab)
    PeriodicTask.objects.create(name="off", task="ping", crontab=crontab, enabled=False)
    page = admin_client.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert "Next run" in page
    expected = next_run(weekly).strftime("%Y-%m-%d %H:%M")
    row = page.split(">weekly-ping<")[1].split("</tr>")[0]
    assert expected in row
    assert "—" in page.split(">off<")[1].split("</tr>")[0]  # disabled: no next run


def form(crontab, **overrides):
    data = {
        "name": "admin-made", "regtask": "t-typed", "task": "", "enabled": "on",
        "crontab": crontab.pk, "args": "[]", "kwargs": json.dumps({"count": 3}),
        "headers": "{}", "priority": "", "queue": "", "exchange": "", "routing_key": "",
        "description": "", "expire_seconds": "",
        "jobyard-TOTAL_FORMS": "1", "jobyard-INITIAL_FORMS": "0",
        "jobyard-MIN_NUM_FORMS": "0", "jobyard-MAX_NUM_FORMS": "1",
        "jobyard-0-seconds": "*/15", "jobyard-0-every_ms": "",
        "jobyard-0-options": json.dumps({"priority": 2}), "jobyard-0-misfire": "skip",
    }  # fmt: skip
    data.update(overrides)
    return data


def test_an_operator_declares_a_six_field_schedule_with_options(admin_client):
    crontab = CrontabSchedule.objects.create(minute="*", hour="*", timezone="Europe/Paris")
    response = admin_client.post("/admin/django_celery_beat/periodictask/add/", form(crontab))
    assert response.status_code == 302, response.content.decode()[:3000]
    task = PeriodicTask.objects.get(name="admin-made")
    assert (task.jobyard.seconds, task.jobyard.misfire, task.jobyard.options) == (
        "*/15",
        "skip",
        {"priority": 2},
    )
    listed = {s["key"]: s for s in list_schedules()}["admin-made"]
    assert listed["pattern"] == "*/15 * * * * *" and listed["next"]
    page = admin_client.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert "next run" in page.lower()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kwargs": json.dumps({"count": "many"})}, "count"),
        ({"kwargs": json.dumps({"colour": "red"})}, "colour"),
        ({"jobyard-0-seconds": "*/0"}, "second"),
        ({"jobyard-0-options": json.dumps({"priority": 0})}, "priority"),
    ],
)
def test_it_refuses_a_bad_schedule_naming_the_field(admin_client, overrides, message):
    crontab = CrontabSchedule.objects.create(minute="*", hour="*")
    response = admin_client.post(
        "/admin/django_celery_beat/periodictask/add/", form(crontab, **overrides)
    )
    assert response.status_code == 200  # the form again, with the error
    assert message in response.content.decode()
    assert not PeriodicTask.objects.filter(name="admin-made").exists()


def test_a_crontab_that_never_fires_or_a_time_out_of_range_is_refused(admin_client):
    never = CrontabSchedule.objects.create(minute="0", hour="0", day_of_month="30",
                                           month_of_year="2")  # fmt: skip
    response = admin_client.post("/admin/django_celery_beat/periodictask/add/", form(never))
    assert response.status_code == 200
    assert "never fires" in response.content.decode()
    response = admin_client.post(
        "/admin/django_celery_beat/periodictask/add/",
        form(never, **{"jobyard-0-seconds": "", "jobyard-0-every_ms": str(10**15)}),
    )
    assert "at most 10 years" in response.content.decode()
    assert not PeriodicTask.objects.filter(name="admin-made").exists()


def test_the_list_shows_a_broken_schedule_with_its_error(admin_client):
    never = CrontabSchedule.objects.create(minute="0", hour="0", day_of_month="30",
                                           month_of_year="2")  # fmt: skip
    PeriodicTask.objects.create(name="feb-30", task="ping", crontab=never)
    response = admin_client.get("/admin/django_celery_beat/periodictask/")
    assert response.status_code == 200
    row = response.content.decode().split(">feb-30<")[1].split("</tr>")[0]
    assert "never fires" in row and "—" in row
