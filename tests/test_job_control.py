"""Issue 14 in Python, the CLI and the admin: job logs (and that they go with their job),
cancel, promote, LIFO, and retry visibility (metrics, the dashboard, the "retrying" filter).
The HTTP API's side, and the cancel acceptance with killed processes, are in
tests/api/test_job_control.py."""

from __future__ import annotations

import json
import re
import uuid
from io import StringIO

import pytest
from django.contrib.admin.utils import quote
from django.core.management import CommandError, call_command

from tasks import InvalidJobState, JobCancelled, Queue, enqueue, get_job, keys
from tasks.connection import get_redis
from tasks.models import JobRecord
from tasks.testing import run_job
from tests.conftest import drain_archive, order, runs, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def jobs(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def logs_key_exists(queue: str, job_id: str) -> bool:
    return bool(get_redis().exists(keys.logs(queue, job_id)))


# --- logs ---------------------------------------------------------------------------------


def test_job_log_keeps_the_newest_lines_and_refuses_outside_a_run(settings):
    settings.JOBYARD = {**settings.JOBYARD, "LOG_LINES_KEPT": 5}
    job = run_job("t-patient.cleanup", {"seconds": 0.5, "via": "log"})
    lines, count = get_job("cleanup", job.id).get_logs()
    assert count == 5 and len(lines) == 5
    last = int(lines[-1].split()[-1])
    assert lines == [f"step {n}" for n in range(last - 4, last + 1)]  # the newest five
    with pytest.raises(InvalidJobState):
        get_job("cleanup", job.id).log("from outside")
    with pytest.raises(ValueError):
        job.get_logs(3, 1)


@pytest.mark.parametrize("end", ["retention", "remove", "clean", "remove_on_complete"])
def test_a_jobs_log_is_deleted_with_the_job(end):
    """Every path that deletes a job hash deletes its log (prelude.lua's drop_job)."""
    options = {"remove_on_complete": True} if end == "remove_on_complete" else {}
    first = run_job("t-patient.cleanup", {"seconds": 0.1, "via": "log"}, **options)
    if end == "remove_on_complete":
        assert get_job("cleanup", first.id) is None
    else:
        assert logs_key_exists("cleanup", first.id)
    if end == "retention":  # keep 1 completed: the next job trims the first
        run_job("t-patient.cleanup", {"seconds": 0.1, "via": "log"}, remove_on_complete=1)
    elif end == "remove":
        first.remove()
    elif end == "clean":
        assert Queue("cleanup").clean(0, 10, "completed") == [first.id]
    assert get_job("cleanup", first.id) is None
    assert not logs_key_exists("cleanup", first.id)


def test_cli_logs_prints_a_jobs_lines():
    job = run_job("t-patient.cleanup", {"seconds": 0.2, "via": "log"})
    out = jobs("logs", "cleanup", job.id)
    assert out.splitlines()[:2] == ["step 1", "step 2"]
    page = json.loads(jobs("logs", job.id, "--queue", "cleanup", "--start", "1", "--end", "1",
                           "--json"))  # fmt: skip
    assert page["logs"] == ["step 2"] and page["count"] >= 2
    with pytest.raises(CommandError, match="--start"):
        jobs("logs", "cleanup", job.id, "--start", "-1")
    with pytest.raises(CommandError, match="QUEUE: unknown queue"):
        jobs("logs", "nowhere", job.id)
    with pytest.raises(CommandError, match="no job"):
        jobs("logs", "cleanup", "no-such-job")


# --- cancel, promote, LIFO in Python and the CLI --------------------------------------------


def test_cancel_in_python_and_the_cli():
    waiting = enqueue("t-echo.cleanup", {})  # no worker consumes cleanup here
    assert waiting.cancel() == "removed" and get_job("cleanup", waiting.id) is None
    delayed = enqueue("t-echo.cleanup", {}, delay=60_000)
    reply = json.loads(jobs("cancel", "cleanup", delayed.id, "--json"))
    assert reply == {"jobId": delayed.id, "queue": "cleanup", "cancelled": "removed"}
    assert JobRecord.objects.get(job_id=delayed.id).state == "cancelled"  # archived as such
    with pytest.raises(CommandError, match="no job"):
        jobs("cancel", "cleanup", delayed.id)
    with pytest.raises(InvalidJobState):
        waiting.cancel()


def test_a_cancelled_job_raises_at_its_next_report_and_fails_cancelled():
    """In-process (run_job): a job cancelled before its run sees it at once; the failure is
    final ("cancelled", no retry), and a retry from the dead letters starts clean."""
    job = enqueue("t-patient.cleanup", {"seconds": 5, "via": "progress"}, attempts=3)
    get_redis().hset(keys.job("cleanup", job.id), "cancelRequested", 1)  # as if cancelled
    ran = run_job("t-patient.cleanup", {"seconds": 5, "via": "progress"}, job_id=job.id)
    assert (ran.state, ran.failed_reason, ran.attempts_made) == ("failed", "cancelled", 1)
    assert "JobCancelled" in ran.stacktrace[-1]
    ran.retry()
    assert get_job("cleanup", job.id).cancel_requested_at is None


def test_job_cancelled_is_importable_and_names_the_job():
    assert str(JobCancelled("abc")) == "job abc was cancelled"


def test_promote_in_python_and_the_cli(start_worker):
    start_worker(["cleanup"], concurrency=1, pool="solo")
    job = enqueue("t-echo.cleanup", {"value": 1}, delay=3_600_000)
    job.promote()
    assert job.wait_until_finished(timeout=30) == 1
    with pytest.raises(InvalidJobState, match="not delayed"):
        job.promote()
    later = enqueue("t-echo.cleanup", {"value": 2}, delay=3_600_000)
    out = jobs("promote", later.id, "--queue", "cleanup")
    assert out.split()[:2] == [later.id, "cleanup"]
    assert later.wait_until_finished(timeout=30) == 2
    with pytest.raises(CommandError, match="not delayed"):
        jobs("promote", "cleanup", later.id)


def test_lifo_from_the_cli_runs_first(start_worker):
    run = f"t:{uuid.uuid4().hex[:8]}"
    Queue("catalog").pause()
    first = [enqueue("t-record.catalog", {"key": run}) for _ in range(2)]
    lifo = enqueue("t-record.catalog", {"key": run}, lifo=True)
    reply = json.loads(jobs("trigger", "t-record.catalog", "--param", f"key={run}", "--lifo",
                            "--json"))  # fmt: skip
    Queue("catalog").resume()
    start_worker(["catalog"], concurrency=1, pool="solo")
    wait_for(lambda: runs(run) == 4, message="four runs")
    # Each LIFO job went to the front when it was sent: the last one sent runs first.
    assert order(run) == [reply["jobId"], lifo.id, *(j.id for j in first)]


# --- the admin --------------------------------------------------------------------------------


def test_admin_job_page_shows_the_log_and_cancels_and_promotes(admin_client):
    done = run_job("t-patient.cleanup", {"seconds": 0.1, "via": "log"})
    page = admin_client.get(f"/admin/tasks/jobrecord/{quote('cleanup:' + done.id)}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="jy-logs"' in html and "step 1\n" in html

    delayed = enqueue("t-echo.cleanup", {}, delay=3_600_000)
    operate = f"/admin/tasks/jobrecord/{quote('cleanup:' + delayed.id)}/operate/"
    admin_client.post(operate, {"action": "promote"})
    assert get_job("cleanup", delayed.id).state == "waiting"
    admin_client.post(operate, {"action": "cancel"})
    assert get_job("cleanup", delayed.id) is None


# --- retry visibility -------------------------------------------------------------------------


def test_retries_show_in_metrics_the_dashboard_and_the_retrying_filter(admin_client):
    """A job whose attempts fail but which is retried counts in attemptFailureRate and
    retriedPerMinute (not in failureRate), and the admin lists it under "retrying"."""
    run = f"t:{uuid.uuid4().hex[:8]}"
    for _ in range(5):
        run_job("t-echo.cleanup", {"value": 1})
    retrying = run_job("t-flaky.cleanup", {"key": run, "fail_times": 5}, attempts=3,
                       backoff={"type": "fixed", "delay": 3_600_000})  # fmt: skip
    assert (retrying.state, retrying.attempts_made) == ("delayed", 1)
    plain_delay = enqueue("t-echo.cleanup", {}, delay=3_600_000)

    metrics = Queue("cleanup").metrics()
    assert metrics["failureRate"] == 0.0
    assert metrics["attemptFailureRate"] == round(1 / 6, 4) and metrics["retriedPerMinute"] > 0

    drain_archive()
    changelist = admin_client.get("/admin/tasks/jobrecord/?state=retrying").content.decode()
    listed = re.findall(r'class="field-job_id"><a href="[^"]+">([^<]+)</a>', changelist)
    assert listed == [retrying.id] and plain_delay.id not in listed

    dashboard = admin_client.get("/admin/dashboard/").content.decode()
    card = dashboard[dashboard.index('id="queue-cleanup"') :]
    assert "failed attempts (1 h)" in card and "17 %" in card[: card.index("</section>")]
