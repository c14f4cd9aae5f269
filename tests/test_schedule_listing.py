"""Every schedule lists its key, pattern and next run."""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from tasks.scheduling.service import list_schedules


@pytest.mark.django_db
def test_it_lists_key_pattern_and_next_run():
    daily = CrontabSchedule.objects.create(minute="0", hour="3", timezone="UTC")
    PeriodicTask.objects.create(name="nightly-ping", task="ping", crontab=daily)
    every = IntervalSchedule.objects.create(every=30, period="seconds")
    PeriodicTask.objects.create(name="email-echo", task="t-echo.email", interval=every)
    listed = {s["key"]: s for s in list_schedules()}
    assert listed["nightly-ping"]["pattern"] == "0 3 * * *"
    assert listed["nightly-ping"]["queue"] == "default"
    upcoming = timezone.datetime.fromtimestamp(listed["nightly-ping"]["next"] / 1000, UTC)
    assert upcoming > timezone.now() and (upcoming.hour, upcoming.minute) == (3, 0)
    assert upcoming - timezone.now() <= timedelta(days=1)
    assert listed["email-echo"]["pattern"] == "every 30s"
    assert [s["key"] for s in list_schedules("email")] == ["email-echo"]
