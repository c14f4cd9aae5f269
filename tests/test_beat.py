"""Real beat processes: two at once fire each run once, a dead leader is replaced within
the lease, edits take effect live, downtime is caught up once, a broken schedule stops no
other, and a stuck run holds its schedule back only for a while."""

import time

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from tasks import Queue, get_job, keys
from tasks.connection import get_redis
from tasks.events import read_events
from tasks.scheduling.models import JobSchedule
from tasks.scheduling.service import install_schedule
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
KEY = "every-second"


def fired() -> list[str]:
    """Ids of the runs the schedule created, in the order they were created."""
    events = read_events({"email": "0-0"}, count=100_000)
    return [
        e.job_id
        for e in events
        if e.event == "waiting" and e.job_id.startswith("sched.every-second.")
    ]


def due_seconds(ids: list[str]) -> list[int]:
    return [int(i.rsplit(".", 1)[1]) // 1000 for i in ids]


def leader_pid() -> int:
    owner = get_redis().get(keys.lease("beat"))
    return int(owner.decode().split(":")[1]) if owner else 0


def test_two_beats_fire_each_run_once_and_a_dead_leader_is_replaced(worker, start_beat):
    install_schedule(KEY, "t-echo.email", {"value": 1}, cron="* * * * * *")
    beats = {beat.pid: beat for beat in (start_beat(), start_beat())}
    wait_for(lambda: len(fired()) >= 5, timeout=60, message="five runs")
    leader = beats[leader_pid()]
    before = len(fired())
    leader.kill()  # SIGKILL: no chance to release the lease
    killed_at = time.time()
    wait_for(lambda: len(fired()) >= before + 3, timeout=30, message="runs after the leader died")
    survivor = next(b for pid, b in beats.items() if pid != leader.pid)
    assert leader_pid() == survivor.pid
    ids = fired()
    assert len(ids) == len(set(ids)), "a run was enqueued twice"
    seconds = due_seconds(ids)
    assert seconds == sorted(seconds)
    # The survivor took over within the 2 s lease (plus a step): no gap much longer.
    resumed = next(s for s in seconds if s > killed_at)
    assert resumed - killed_at < 4
    for job_id in ids[-3:]:
        assert get_job("email", job_id).to_dict()["schedule"] == KEY


def test_edits_take_effect_without_restarting_beat(worker, start_beat):
    install_schedule(KEY, "t-echo.email", {"value": 1}, cron="* * * * * *")
    start_beat()
    wait_for(lambda: len(fired()) >= 2, timeout=60)
    PeriodicTask.objects.filter(name=KEY).update(enabled=False)
    time.sleep(1.5)  # a step in flight may still fire once
    stopped = len(fired())
    time.sleep(2.5)
    assert len(fired()) == stopped, "a disabled schedule kept firing"

    task = PeriodicTask.objects.get(name=KEY)
    task.enabled = True
    task.save()
    wait_for(lambda: len(fired()) > stopped, timeout=10, message="the re-enabled schedule")
    PeriodicTask.objects.filter(name=KEY).delete()
    time.sleep(1.5)
    deleted = len(fired())
    time.sleep(2.5)
    assert len(fired()) == deleted, "a deleted schedule kept firing"


def test_after_beat_was_down_it_fires_once_not_once_per_missed_run(worker, start_beat):
    install_schedule(KEY, "t-echo.email", {"value": 1}, cron="* * * * * *")
    beat = start_beat()
    wait_for(lambda: len(fired()) >= 2, timeout=60)
    beat.kill()
    time.sleep(0.5)
    before = fired()
    time.sleep(5)  # five runs are missed
    start_beat()
    wait_for(lambda: len(fired()) >= len(before) + 3, timeout=60)
    after = due_seconds(fired()[len(before) :])
    gap = after[0] - due_seconds(before)[-1]
    assert gap >= 5, "the missed runs were fired one by one"
    assert after == list(range(after[0], after[0] + len(after))), (
        "runs after the restart are regular"
    )


def test_a_schedule_that_never_fires_does_not_stop_the_beat_or_the_others(
    worker, start_beat, tmp_path
):
    """`0 0 30 2 *` (February 30th), as an old row holds it: croniter's error used to leave
    the beat's step, so the beat exited on every start and no schedule fired."""
    never = CrontabSchedule.objects.create(
        minute="0", hour="0", day_of_month="30", month_of_year="2", timezone="UTC"
    )
    PeriodicTask.objects.create(name="feb-30", task="t-echo.email", crontab=never)
    install_schedule(KEY, "t-echo.email", {"value": 1}, cron="* * * * * *")
    log = tmp_path / "beat.log"
    beat = start_beat(output=log)
    wait_for(lambda: len(fired()) >= 3, timeout=60, message="the healthy schedule's runs")
    assert beat.process.poll() is None, "the beat exited"
    broken = JobSchedule.objects.get(periodic_task__name="feb-30")
    assert "never fires" in broken.last_error
    assert log.read_text().count("schedule_broken") == 1  # once, not once per step


def test_a_run_stuck_waiting_holds_its_schedule_back_only_for_the_bound(start_beat, tmp_path):
    """No worker serves `catalog`: each run waits for ever. The schedule used to wait for it
    for ever too; now it fires again once the previous run waited JOBYARD_SCHEDULE_STUCK_MS."""
    install_schedule("stuck", "t-echo.catalog", {"value": 1}, cron="* * * * * *")
    log = tmp_path / "beat.log"
    start_beat(output=log, env={"JOBYARD_SCHEDULE_STUCK_MS": "2000"})

    def runs() -> list[str]:
        return sorted(j.id for j in Queue("catalog").get_jobs(["waiting"], 0, 999))

    first = wait_for(runs, timeout=60, message="the first run")
    time.sleep(1.5)
    assert runs() == first, "a run was piled on one that waited less than the bound"
    wait_for(lambda: len(runs()) >= 3, timeout=15, message="runs after the bound")
    assert "schedule_previous_run_stuck" in log.read_text()
    assert first[0] in log.read_text()
