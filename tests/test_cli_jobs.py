"""`manage.py jobs ...` against real workers: tables for people, JSON for scripts, and
exit codes that tell success (0), failure (1), bad input (2) and not found (3) apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tasks import JobFailed, Queue, enqueue, get_job
from tests.conftest import runs, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
BASE_DIR = Path(__file__).resolve().parent.parent


def jobs(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("jobs", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        jobs(*args)
    return caught.value


def test_trigger_sends_a_job_with_params_and_options(worker):
    out, _ = jobs("trigger", "t-typed", "--param", "count=3", "--param", "label=cli",
                  "--param", "ratio=0.25", "--json")  # fmt: skip
    reply = json.loads(out)
    assert (reply["queue"], reply["state"], reply["created"]) == ("default", "waiting", True)
    job = get_job("default", reply["jobId"])
    assert job.data == {"count": 3, "label": "cli", "ratio": 0.25}
    assert job.wait_until_finished(timeout=30) == {"count": 3, "label": "cli", "ratio": 0.25}

    out, _ = jobs("trigger", "t-echo.catalog", "--param", 'value=["a", 1]', "--delay", "60000",
                  "--priority", "1", "--job-id", "cli-1", "--attempts", "2")  # fmt: skip
    assert out.split() == ["cli-1", "catalog", "delayed"]
    job = get_job("catalog", "cli-1")
    assert (job.data, job.priority, job.attempts) == ({"value": ["a", 1]}, 1, 2)
    out, _ = jobs("trigger", "t-echo.catalog", "--job-id", "cli-1")
    assert "existing job" in out and Queue("catalog").counts()["delayed"] == 1


def test_trigger_wait_shows_progress_and_prints_the_result(worker):
    out, err = jobs("trigger", "t-progress.default", "--param", "steps=4", "--wait")
    assert json.loads(out) == "done"
    bars = err.splitlines()
    assert bars[:4] == ["[########......................]  25%",
                        "[###############...............]  50%",
                        "[######################........]  75%",
                        "[##############################] 100%"]  # fmt: skip
    assert bars[4] == '[progress] {"stage":"done","steps":4}'

    out, _ = jobs("trigger", "t-echo.default", "--param", "value=7", "--wait", "--json")
    assert json.loads(out)["result"] == 7 and json.loads(out)["state"] == "completed"


def test_trigger_wait_exits_1_when_the_job_fails_or_runs_too_long(worker):
    error = fails("trigger", "t-permanent.default", "--wait")
    assert error.returncode == 1 and "PermanentError" in str(error)
    error = fails("trigger", "t-echo.catalog", "--wait", "--timeout", "0.5")  # no worker there
    assert error.returncode == 1 and "not finished within" in str(error)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["t-typed", "--param", "count=many"], "count"),
        (["t-typed"], "count"),
        (["t-typed", "--param", "count=1", "--param", "colour=red"], "colour"),
        (["t-typed", "--param", "count=1", "--priority", "0"], "priority"),
        (["t-typed", "--param", "count"], "--param"),
        (["no-such-type"], "known job types"),
    ],
)
def test_bad_input_exits_2_naming_the_field(args, named):
    error = fails("trigger", *args)
    assert error.returncode == 2
    assert named in str(error)
    assert Queue("default").counts()["waiting"] == 0


def test_status_shows_counts_or_one_job(worker):
    job = enqueue("t-echo.email", {"value": "x"})
    job.wait_until_finished(timeout=30)
    enqueue("t-echo.catalog", {})
    table, _ = jobs("status")
    lines = table.splitlines()
    assert lines[0].split() == ["queue", "waiting", "delayed", "active", "completed", "failed",
                                "paused", "waiting-children"]  # fmt: skip
    assert ["catalog", "1", "0", "0", "0", "0", "0", "0"] in [line.split() for line in lines]
    assert json.loads(jobs("status", "--json")[0])["email"]["completed"] == 1

    text, _ = jobs("status", job.id)
    assert f"job        {job.id}" in text and "state      completed" in text
    assert "queue      email" in text and 'result     "x"' in text
    detail = json.loads(jobs("status", job.id, "--queue", "email", "--json")[0])
    assert detail["id"] == job.id and detail["returnvalue"] == "x"
    assert fails("status", "nobody").returncode == 3
    assert fails("status", job.id, "--queue", "default").returncode == 3


def test_list_failed_retry_and_remove(worker):
    done = enqueue("t-echo.default", {"value": 1})
    done.wait_until_finished(timeout=30)
    key = f"t:{uuid.uuid4().hex[:8]}"
    bad = enqueue("t-flaky.default", {"key": key, "fail_times": 1}, attempts=1)
    with pytest.raises(JobFailed):
        bad.wait_until_finished(timeout=30)

    listing, _ = jobs("list", "--queue", "default")
    assert done.id in listing and bad.id in listing
    assert [j["id"] for j in json.loads(jobs("list", "--state", "failed", "--json")[0])] == [
        bad.id]  # fmt: skip
    assert fails("list", "--state", "lost").returncode == 2

    dead, _ = jobs("failed")
    assert bad.id in dead and "RuntimeError: failure 1" in dead
    assert fails("retry", done.id).returncode == 1  # not failed
    assert fails("retry", "nobody").returncode == 3
    jobs("retry", bad.id)
    wait_for(lambda: get_job("default", bad.id).state == "completed")
    assert runs(key) == 2

    assert "removed" in jobs("remove", done.id)[0]
    assert get_job("default", done.id) is None
    assert fails("remove", done.id).returncode == 3

    sleeper = enqueue("t-sleep.default", {"seconds": 2, "key": key + "s"})
    wait_for(lambda: runs(key + "s") == 1)
    assert fails("remove", sleeper.id).returncode == 1  # active
    wait_for(lambda: get_job("default", sleeper.id).state == "completed")


def test_retry_all_and_clean(worker):
    failed = [enqueue("t-permanent.default", {}) for _ in range(2)]
    for job in failed:
        with pytest.raises(JobFailed):
            job.wait_until_finished(timeout=30)
    reply = json.loads(jobs("retry", "--all", "--queue", "default", "--json")[0])
    assert reply == {"retried": {"default": 2}, "total": 2}
    assert "one of the arguments" in str(fails("retry"))  # neither JOB_ID nor --all

    enqueue("t-echo.default", {}).wait_until_finished(timeout=30)
    wait_for(lambda: Queue("default").counts()["failed"] == 2)
    out, _ = jobs("clean", "--queue", "default", "--state", "failed")
    assert out.strip() == "removed 2 failed job(s)"
    assert json.loads(jobs("clean", "--json")[0])["total"] == 1  # the completed one


def test_pause_and_resume(worker):
    assert jobs("pause", "default")[0].strip() == "paused default"
    try:
        job = enqueue("t-echo.default", {"value": 1})
        assert Queue("default").counts()["paused"] == 1
    finally:
        out, _ = jobs("resume", "default")
    assert out.strip() == "resumed default: 1 parked job(s) sent"
    assert job.wait_until_finished(timeout=30) == 1


def test_workers_and_schedules(worker):
    wait_for(lambda: worker.name in jobs("workers")[0], message="the worker's heartbeat")
    (mine,) = [w for w in json.loads(jobs("workers", "--json")[0]) if w["name"] == worker.name]
    assert mine["concurrency"] == worker.concurrency

    every = IntervalSchedule.objects.create(every=30, period="seconds")
    PeriodicTask.objects.create(name="cli-echo", task="t-echo.email", interval=every)
    table, _ = jobs("schedules")
    row = next(line.split() for line in table.splitlines() if line.startswith("cli-echo"))
    assert row[:5] == ["cli-echo", "t-echo.email", "email", "every", "30s"]
    (listed,) = json.loads(jobs("schedules", "--queue", "email", "--json")[0])
    assert {"key", "jobType", "queue", "pattern", "next"} <= set(listed)
    assert jobs("schedules", "--queue", "catalog")[0].strip() == "no schedules"


def test_a_broken_schedule_is_listed_and_one_that_never_fires_refused():
    from django_celery_beat.models import CrontabSchedule

    never = CrontabSchedule.objects.create(minute="0", hour="0", day_of_month="30",
                                           month_of_year="2", timezone="UTC")  # fmt: skip
    PeriodicTask.objects.create(name="feb-30", task="t-echo.email", crontab=never)
    table, _ = jobs("schedules")  # raised croniter's error
    row = next(line for line in table.splitlines() if line.startswith("feb-30"))
    assert " - " in row and "never fires" in row
    (listed,) = json.loads(jobs("schedules", "--json")[0])
    assert listed["next"] is None and "never fires" in listed["lastError"]

    refused = fails("trigger", "schedule-recurring", "--param", "key=k", "--param",
                    "target=ping", "--param", "pattern=0 0 30 2 *")  # fmt: skip
    assert refused.returncode == 2
    assert "pattern" in str(refused) and "never fires" in str(refused)


def test_watch_redraws_the_counts_table():
    enqueue("t-echo.catalog", {})
    out, _ = jobs("watch", "--iterations", "3", "--interval", "0.01")
    assert out.count("jobs watch") == 3
    assert out.count("catalog") == 3


def test_the_exit_codes_reach_the_shell():
    env = {**os.environ}

    def code(*args: str) -> int:
        return subprocess.run([sys.executable, "manage.py", "jobs", *args], cwd=BASE_DIR,
                              env=env, capture_output=True).returncode  # fmt: skip

    assert code("status") == 0
    assert code("status", "nobody") == 3
    assert code("trigger", "t-typed", "--param", "count=x") == 2
    assert code("pause") == 2  # argparse: QUEUE missing
    assert code("retry") == 2  # neither JOB_ID nor --all
    assert code("pause", "nowhere") == 2
