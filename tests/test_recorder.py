"""The recorder copies each job's life from the event streams into the archive."""

import os
import signal
import subprocess
import sys
import uuid

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from tasks import JobFailed, archive, enqueue, get_job
from tasks import recorder as recorder_module
from tasks.connection import get_redis
from tasks.keys import events as events_key
from tasks.models import JobRecord
from tasks.recorder import RECORDER_GROUP, record_events, recorder_lag
from tests.conftest import BASE_DIR, drain_archive, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def key() -> str:
    return f"t:{uuid.uuid4().hex[:8]}"


def test_it_archives_a_jobs_life_with_each_attempt(worker):
    k = key()
    job = enqueue(
        "t-flaky.default", {"key": k, "fail_times": 2}, backoff={"type": "fixed", "delay": 10}
    )
    assert job.wait_until_finished(timeout=30) == 3
    assert drain_archive() > 0

    row = JobRecord.objects.get(queue="default", job_id=job.id)
    assert (row.name, row.state, row.returnvalue, row.attempts_made) == (
        "t-flaky.default", "completed", 3, 3,
    )  # fmt: skip
    assert row.data == {"key": k, "fail_times": 2}
    assert row.failed_reason == "RuntimeError: failure 2"
    assert len(row.stacktrace) == 2 and "failure 1" in row.stacktrace[0]
    assert row.created_at <= row.processed_on <= row.finished_on and row.worker

    attempts = list(row.attempts.order_by("number"))
    assert [(a.number, a.outcome) for a in attempts] == [
        (1, "retrying"), (2, "retrying"), (3, "completed"),
    ]  # fmt: skip
    assert [a.failed_reason for a in attempts] == [
        "RuntimeError: failure 1", "RuntimeError: failure 2", "",
    ]  # fmt: skip
    assert all(a.started_at <= a.finished_at for a in attempts)
    # A worker names the pool process that ran an attempt (node:pid); with two processes a
    # retry may run in the other one. The row keeps the last attempt's.
    assert attempts[-1].worker == row.worker
    assert all(a.worker.startswith(f"{worker.name}:") for a in attempts)
    assert attempts[0].finished_at <= attempts[1].started_at
    assert sum(recorder_lag()[q] or 0 for q in settings.JOBYARD_QUEUES) == 0


def test_it_records_a_failure_and_a_retry_from_the_dead_letter_list(worker):
    job = enqueue("t-permanent.default", {})
    with pytest.raises(JobFailed):
        job.wait_until_finished(timeout=30)
    drain_archive()
    row = JobRecord.objects.get(job_id=job.id)
    assert row.state == "failed" and "PermanentError" in row.failed_reason
    assert [a.outcome for a in row.attempts.all()] == ["failed"]

    job.retry()
    with pytest.raises(JobFailed):
        job.wait_until_finished(timeout=30)
    drain_archive()
    # Numbering goes on across the retry, though the registry's attemptsMade restarted.
    assert [(a.number, a.outcome) for a in row.attempts.order_by("number")] == [
        (1, "failed"), (2, "failed"),
    ]  # fmt: skip


def test_it_keeps_jobs_that_left_the_registry(worker):
    # Seen while waiting, then removed on completion: the row keeps name, data and result.
    seen = enqueue("t-sleep.default", {"seconds": 0.3}, remove_on_complete=True)
    drain_archive()
    assert JobRecord.objects.get(job_id=seen.id).state in ("waiting", "active")
    assert seen.wait_until_finished(timeout=30) == 0.3
    assert get_job("default", seen.id) is None
    drain_archive()
    row = JobRecord.objects.get(job_id=seen.id)
    assert (row.name, row.data, row.state, row.returnvalue) == (
        "t-sleep.default", {"seconds": 0.3, "key": None}, "completed", 0.3,
    )  # fmt: skip
    assert row.finished_on and row.removed_at is None

    # Never seen in the registry: archived from its events alone.
    unseen = enqueue("t-echo.default", {"value": 7}, remove_on_complete=True)
    assert unseen.wait_until_finished(timeout=30) == 7
    drain_archive()
    row = JobRecord.objects.get(job_id=unseen.id)
    assert (row.name, row.state, row.returnvalue) == ("", "completed", 7)
    assert [a.outcome for a in row.attempts.all()] == ["completed"]

    # Removed: the last known state stays, with the removal's time.
    removed = enqueue("t-echo.default", {"value": 1}, delay=60_000)
    drain_archive()
    removed.remove()
    drain_archive()
    row = JobRecord.objects.get(job_id=removed.id)
    assert row.state == "delayed" and row.removed_at is not None


def test_it_applies_an_unacknowledged_batch_again_without_duplicates(worker, monkeypatch):
    k = key()
    job = enqueue(
        "t-flaky.default", {"key": k, "fail_times": 1}, backoff={"type": "fixed", "delay": 10}
    )
    job.wait_until_finished(timeout=30)
    real = archive.apply

    def commit_then_die(events):
        real(events)  # the rows are committed...
        raise ConnectionError("recorder lost before XACK")  # ...but nothing is acknowledged

    monkeypatch.setattr(archive, "apply", commit_then_die)
    with pytest.raises(ConnectionError):
        record_events()
    pending = get_redis().xpending(events_key("default"), RECORDER_GROUP)["pending"]
    assert pending > 0
    monkeypatch.setattr(archive, "apply", real)

    assert drain_archive() == pending  # the abandoned entries are claimed and applied again
    assert get_redis().xpending(events_key("default"), RECORDER_GROUP)["pending"] == 0
    row = JobRecord.objects.get(job_id=job.id)
    assert [(a.number, a.outcome) for a in row.attempts.order_by("number")] == [
        (1, "retrying"), (2, "completed"),
    ]  # fmt: skip


def lock_held() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = %s)",
            [recorder_module.LOCK_KEY],
        )
        return cursor.fetchone()[0]


def test_it_waits_its_turn_while_another_recorder_holds_the_lock():
    enqueue("t-echo.catalog", {}, delay=60_000)
    params = connection.get_connection_params()
    other = psycopg.connect(
        host=params["host"], port=params["port"], user=params["user"], dbname=params["dbname"],
        autocommit=True,
    )  # fmt: skip
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [recorder_module.LOCK_KEY])
        assert lock_held()
        assert record_events() == 0
        assert not JobRecord.objects.exists()
    finally:
        other.close()  # its session lock goes with it, once its backend has exited
    wait_for(lambda: not lock_held(), timeout=10, message="the closed session's lock to go")
    assert record_events() == 1
    assert JobRecord.objects.get().state == "delayed"


def test_record_jobs_runs_until_sigterm_and_stops_cleanly():
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "record_jobs", "--block-ms", "200"],
        cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        job = enqueue("t-echo.catalog", {"value": 1}, delay=60_000)
        wait_for(lambda: JobRecord.objects.filter(job_id=job.id).exists(), timeout=30,
                 message="the recorder process to archive the job")  # fmt: skip
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert b"recorder stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
