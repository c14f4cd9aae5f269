"""Schedules in the admin (django-celery-beat's periodic tasks): the list shows each next
run; declaring one runs the same checks as from code, with errors on their field.

admin_client is pytest-django's: a superuser, logged in."""

import json

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

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
        "crontab": crontab.pk if crontab else "", "args": "[]", "kwargs": json.dumps({"count": 3}),
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


# --- Jobyard's own page, plain Celery tasks, and fields that cannot contradict each other ---

SCHEDULES = "/admin/scheduling/schedule/"


def test_jobyard_lists_the_schedules_on_its_own_page(admin_client):
    from tasks.scheduling.service import install_schedule
    from tests.jobapp.beat_tasks import NAME as PLAIN

    install_schedule("six-fields", "ping", cron="*/15 * * * * *")
    interval = IntervalSchedule.objects.create(every=30, period="seconds")
    PeriodicTask.objects.create(name="plain-one", task=PLAIN, args='["k"]', interval=interval)
    index = admin_client.get("/admin/").content.decode()
    assert SCHEDULES in index
    page = admin_client.get(SCHEDULES).content.decode()
    for column in ("Name", "Task", "Pattern", "Next run", "Enabled", "Last run", "Last error"):
        assert column in page
    row = page.split(">six-fields<")[1].split("</tr>")[0]
    assert "*/15 * * * * * (UTC)" in row and ">ping<" in row  # the seconds field shown
    assert next_run(PeriodicTask.objects.get(name="six-fields")).strftime("%Y-%m-%d") in row
    row = page.split(">plain-one<")[1].split("</tr>")[0]
    assert "every 30s" in row and PLAIN in row
    change = admin_client.get(
        f"{SCHEDULES}{PeriodicTask.objects.get(name='six-fields').pk}/change/"
    )
    assert change.status_code == 200 and "jobyard-0-seconds" in change.content.decode()


def plain_form(interval, **overrides):
    from tests.jobapp.beat_tasks import NAME as PLAIN

    data = form(None, **{"regtask": PLAIN, "interval": interval.pk,
                         "args": '["plain-key"]', "kwargs": "{}", "queue": "notifications",
                         "priority": "3", "jobyard-0-seconds": "", "jobyard-0-options": "{}",
                         "jobyard-0-misfire": "once"})  # fmt: skip
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_an_operator_schedules_a_plain_celery_task(admin_client):
    interval = IntervalSchedule.objects.create(every=30, period="seconds")
    response = admin_client.post(f"{SCHEDULES}add/", plain_form(interval))
    assert response.status_code == 302, response.content.decode()[:3000]
    task = PeriodicTask.objects.get(name="admin-made")
    assert (task.queue, task.priority, task.args) == ("notifications", 3, '["plain-key"]')
    assert {s["key"]: s for s in list_schedules()}["admin-made"]["queue"] == "notifications"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jobyard-0-options": '{"attempts": 2}'}, "Jobyard job options apply to job types"),
        ({"queue": "celery"}, "unknown queue &#x27;celery&#x27;"),
        ({"priority": "12"}, "0 (highest) to 9 (lowest)"),
        ({"args": "[]"}, "missing 1 required positional argument"),
        (
            {"regtask": "", "task": "nope"},
            "neither a Jobyard job type nor a registered Celery task",
        ),
        ({"regtask": "ping", "args": "[1]", "queue": ""}, "takes its parameters by name"),
        ({"regtask": "ping", "args": "[]"}, "runs on queue &#x27;default&#x27;"),
        ({"regtask": "ping", "args": "[]", "queue": "", "expire_seconds": "30"}, "do not expire"),
        ({"regtask": "ping", "args": "[]", "queue": "", "headers": '{"a": 1}'}, "custom headers"),
    ],
)
def test_it_refuses_what_a_schedule_cannot_honour(admin_client, overrides, message):
    interval = IntervalSchedule.objects.create(every=30, period="seconds")
    response = admin_client.post(f"{SCHEDULES}add/", plain_form(interval, **overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PeriodicTask.objects.filter(name="admin-made").exists()


def field_errors(response) -> dict[str, list[str]]:
    """The errors of the form and of Jobyard's inline, by field."""
    errors = {k: list(v) for k, v in response.context["adminform"].form.errors.items()}
    for formset in response.context["inline_admin_formsets"]:
        for inline_form in formset.formset.forms:
            errors.update({k: list(v) for k, v in inline_form.errors.items()})
    return errors


@pytest.mark.parametrize(
    ("schedule", "inline", "field", "message"),
    [
        ("interval", {"jobyard-0-every_ms": "10000"}, "every_ms",
         "every_ms (10000 ms) contradicts the interval (every 15 seconds, 15000 ms)"),
        ("crontab", {"jobyard-0-every_ms": "5000"}, "every_ms",
         "every_ms describes an interval schedule"),
        ("interval", {"jobyard-0-seconds": "*/5"}, "seconds",
         "a seconds field extends a crontab"),
        ("interval", {"priority": "1", "jobyard-0-options": '{"priority": 7}'}, "options",
         "priority 1 (Jobyard priority 2) contradicts the Jobyard options' priority 7"),
    ],
)  # fmt: skip
def test_jobyards_fields_cannot_contradict_the_schedule(admin_client, schedule, inline, field,
                                                        message):  # fmt: skip
    interval = IntervalSchedule.objects.create(every=15, period="seconds")
    crontab = CrontabSchedule.objects.create(minute="*", hour="*")
    data = form(crontab, **{"jobyard-0-seconds": "", "jobyard-0-options": "{}", **inline})
    if schedule == "interval":
        data.update(crontab="", interval=interval.pk)
    response = admin_client.post(f"{SCHEDULES}add/", data)
    assert response.status_code == 200
    assert any(message in error for error in field_errors(response).get(field, [])), field_errors(
        response
    )
    assert not PeriodicTask.objects.filter(name="admin-made").exists()
    # The same schedule with the two agreeing (or the Jobyard field left empty) is accepted.
    agreeing = {"every_ms": "15000", "seconds": "", "options": '{"priority": 2}'}[field]
    data[f"jobyard-0-{field}"] = agreeing
    if field == "every_ms" and schedule == "crontab":
        data["jobyard-0-every_ms"] = ""
    assert admin_client.post(f"{SCHEDULES}add/", data).status_code == 302
