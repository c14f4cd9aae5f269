"""Default schedules install idempotently and never overwrite an operator's edit."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from tasks.scheduling import defaults
from tasks.scheduling.patterns import InvalidSchedule


@pytest.mark.pure
def test_the_platform_declares_its_retention_clean():
    assert "jobyard-clean-finished-jobs" in {d.key for d in defaults.default_schedules()}


@pytest.mark.django_db
def test_it_installs_once_and_keeps_an_admin_edit(monkeypatch, capsys):
    monkeypatch.setattr(defaults, "_DEFAULTS", {})
    defaults.default_schedule("ping-hourly", "ping", {"sent_at": None}, cron="0 * * * *")
    call_command("setup_schedules")
    assert "1 created (ping-hourly)" in capsys.readouterr().out
    task = PeriodicTask.objects.get(name="ping-hourly")
    assert task.task == "ping"
    assert (task.crontab.minute, task.crontab.hour) == ("0", "*")

    # The operator moves it to 05 past and disables it in the admin.
    task.crontab.minute = "5"
    task.crontab.save()
    task.enabled = False
    task.save()

    call_command("setup_schedules")
    assert "0 created (-), 1 already present" in capsys.readouterr().out
    assert PeriodicTask.objects.filter(name="ping-hourly").count() == 1
    task.refresh_from_db()
    assert task.crontab.minute == "5" and task.enabled is False


@pytest.mark.pure
def test_a_default_needs_exactly_one_pattern():
    with pytest.raises(InvalidSchedule):
        defaults.default_schedule("bad", "ping")


@pytest.mark.pure
def test_a_default_that_never_fires_is_refused_where_it_is_declared(monkeypatch):
    monkeypatch.setattr(defaults, "_DEFAULTS", {})
    with pytest.raises(InvalidSchedule, match="feb-30.*never fires"):
        defaults.default_schedule("feb-30", "ping", cron="0 0 30 2 *")
    assert defaults.default_schedules() == []
