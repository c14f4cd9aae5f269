"""Schedules in the admin: django-celery-beat's periodic tasks, with their next run."""

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from tasks.scheduling.service import next_run

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
