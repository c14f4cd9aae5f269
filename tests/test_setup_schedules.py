"""Default schedules install idempotently and never overwrite an operator's edit."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from tasks import schedules


@pytest.fixture
def declared_default(monkeypatch):
    monkeypatch.setattr(schedules, "_DEFAULTS", {})
    schedules.default_schedule("ping-hourly", "ping", "0 * * * *", {"sent_at": None})
    return "ping-hourly"


@pytest.mark.django_db
def test_it_installs_once_and_keeps_an_admin_edit(declared_default, capsys):
    call_command("setup_schedules")
    assert "1 created (ping-hourly)" in capsys.readouterr().out
    task = PeriodicTask.objects.get(name=declared_default)
    assert task.task == "ping" and task.queue == "default"
    assert (task.crontab.minute, task.crontab.hour) == ("0", "*")

    # The operator moves it to 05 past and disables it in the admin.
    task.crontab.minute = "5"
    task.crontab.save()
    task.enabled = False
    task.save()

    call_command("setup_schedules")
    assert "0 created (-), 1 already present" in capsys.readouterr().out
    assert PeriodicTask.objects.filter(name=declared_default).count() == 1
    task.refresh_from_db()
    assert task.crontab.minute == "5" and task.enabled is False


def test_it_refuses_a_cron_with_the_wrong_number_of_fields():
    with pytest.raises(ValueError, match="must have 5 fields, has 3"):
        schedules.default_schedule("bad", "ping", "0 * *")
