"""The bounded archive: finished jobs' rows pruned by age per queue and final state, with
their attempts, in batches of bounded size; through the job type, the CLI and the dashboard.

Rows are inserted straight into PostgreSQL (generate_series), as the recorder would have
written them long ago: the registry has nothing to do with pruning.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test import Client, override_settings
from django.utils import timezone

from tasks import InvalidJobData, enqueue
from tasks.archive_retention import archive_size, prune_archive, retention_days
from tasks.models import JobAttempt, JobRecord
from tasks.testing import run_job

pytestmark = pytest.mark.django_db(transaction=True)

DAY = timedelta(days=1)


def insert_rows(queue: str, state: str, count: int, age: timedelta, *, prefix: str,
                attempts_every: int = 0, cancelled: bool = False) -> None:  # fmt: skip
    """`count` archive rows of `queue` in `state`, finished `age` ago (one second apart,
    older with each row), and an attempt for every `attempts_every`-th of them."""
    now = timezone.now()
    age_column = "removed_at" if cancelled else "finished_on"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO tasks_jobrecord (queue, job_id, name, state, data, opts, failed_reason,
                stacktrace, attempts_made, created_at, processed_on, {age_column}, worker,
                updated_at)
            SELECT %(queue)s, %(prefix)s || g, 'bulk', %(state)s, '{{}}', '{{}}', '', '[]', 1,
                t.at - interval '1 second', t.at - interval '1 second', t.at, '', now()
            FROM generate_series(1, %(count)s) g,
                 LATERAL (SELECT %(newest)s::timestamptz - g * interval '1 second' AS at) t
            """,  # noqa: S608 - the column is one of two names
            {
                "queue": queue,
                "prefix": prefix,
                "state": state,
                "count": count,
                "newest": now - age,
            },  # fmt: skip
        )
        if attempts_every:
            cursor.execute(
                """
                INSERT INTO tasks_jobattempt (job_id, number, started_at, finished_at, outcome,
                    failed_reason, worker, event_id)
                SELECT id, 1, processed_on, finished_on, 'completed', '', '', '1-0'
                FROM tasks_jobrecord WHERE queue = %s AND job_id LIKE %s AND id %% %s = 0
                """,
                [queue, prefix + "%", attempts_every],
            )


def ids(queue: str, prefix: str) -> set[str]:
    return set(
        JobRecord.objects.filter(queue=queue, job_id__startswith=prefix).values_list(
            "job_id", flat=True
        )
    )


def test_the_default_retention_is_7_days_completed_30_days_failed():
    assert retention_days("default", "completed") == 7
    assert retention_days("webhooks", "failed") == 30
    assert retention_days("email", "cancelled") == 7


def test_only_old_rows_of_final_states_go_with_their_attempts_in_bounded_batches():
    insert_rows("default", "completed", 50, 8 * DAY, prefix="old-done-", attempts_every=2)
    insert_rows("default", "completed", 20, 6 * DAY, prefix="new-done-", attempts_every=1)
    insert_rows("default", "failed", 30, 8 * DAY, prefix="young-fail-", attempts_every=1)
    insert_rows("default", "failed", 25, 31 * DAY, prefix="old-fail-", attempts_every=1)
    insert_rows("default", "cancelled", 10, 8 * DAY, prefix="old-cancel-", cancelled=True)
    # Not final, however old: still in flight, or its last event was lost.
    insert_rows("default", "active", 5, 90 * DAY, prefix="stuck-")
    insert_rows("default", "waiting", 5, 90 * DAY, prefix="wait-")
    kept_attempts = JobAttempt.objects.filter(job__job_id__regex=r"^(new-done|young-fail)-")
    assert kept_attempts.count() == 50

    seen = []
    summary = prune_archive(batch_size=7, on_batch=seen.append)

    assert ids("default", "old-") == set()
    assert len(ids("default", "new-done-")) == 20 and len(ids("default", "young-fail-")) == 30
    assert len(ids("default", "stuck-")) == 5 and len(ids("default", "wait-")) == 5
    assert JobAttempt.objects.count() == 50 == kept_attempts.count()
    assert summary.deleted["default.completed"] == 50
    assert summary.deleted["default.failed"] == 25
    assert summary.deleted["default.cancelled"] == 10
    assert summary.attempts == 25 + 25
    # Several statements, none over the batch size.
    assert summary.batches == len(seen) >= (50 + 25 + 10) // 7
    assert max(b.rows for b in seen) == summary.largest_batch == 7


def test_each_queue_keeps_its_own_retention():
    queues = {name: dict(conf) for name, conf in settings.JOBYARD_QUEUES.items()}
    queues["webhooks"]["archive_days"] = {"completed": 2, "failed": 0, "cancelled": 7}
    insert_rows("webhooks", "completed", 10, 3 * DAY, prefix="hook-done-")
    insert_rows("webhooks", "failed", 10, 400 * DAY, prefix="hook-fail-")  # 0: kept for ever
    insert_rows("email", "completed", 10, 3 * DAY, prefix="mail-done-")  # 7 days: kept
    with override_settings(JOBYARD_QUEUES=queues):
        summary = prune_archive()
    assert ids("webhooks", "hook-done-") == set()
    assert len(ids("webhooks", "hook-fail-")) == 10 and len(ids("email", "mail-done-")) == 10
    assert "webhooks.failed" not in summary.deleted


def test_older_than_queue_and_state_narrow_a_run():
    insert_rows("email", "completed", 10, 2 * DAY, prefix="a-")
    insert_rows("email", "failed", 10, 2 * DAY, prefix="b-")
    insert_rows("default", "completed", 10, 2 * DAY, prefix="c-")
    summary = prune_archive(queues=["email"], states=["completed"], older_than=DAY)
    assert summary.total == 10 and ids("email", "a-") == set()
    assert len(ids("email", "b-")) == 10 and len(ids("default", "c-")) == 10
    with pytest.raises(ValueError, match="state"):
        prune_archive(states=["active"])
    with pytest.raises(ValueError, match="queue"):
        prune_archive(queues=["nope"])


def test_the_prune_archive_job_type_prunes_and_validates_its_parameters():
    insert_rows("reports", "failed", 12, 31 * DAY, prefix="r-", attempts_every=3)
    attempts = JobAttempt.objects.count()
    job = run_job("prune-archive", {"queue": "reports"})
    assert job.state == "completed", job.failed_reason
    assert job.returnvalue["deleted"]["reports.failed"] == 12
    assert job.returnvalue["attempts"] == attempts == 4 and JobAttempt.objects.count() == 0
    assert job.progress["rows"] == 12
    for bad, field in (({"state": "active"}, "state"), ({"queue": "nope"}, "queue"),
                       ({"olderThanDays": -1}, "olderThanDays")):  # fmt: skip
        with pytest.raises(InvalidJobData) as caught:
            enqueue("prune-archive", bad)
        assert field in str(caught.value)


def test_the_prune_archive_job_has_a_default_schedule():
    from tasks.scheduling.defaults import default_schedules

    schedules = {d.key: d for d in default_schedules()}
    assert schedules["jobyard-prune-archive"].job_type == "prune-archive"


def jobs(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_jobs_clean_archive_on_the_command_line():
    insert_rows("catalog", "completed", 10, 3 * DAY, prefix="k-", attempts_every=1)
    insert_rows("catalog", "failed", 10, 3 * DAY, prefix="f-")
    assert "pruned 0 archived job(s)" in jobs("clean", "--archive", "--queue", "catalog")
    reply = json.loads(jobs("clean", "--archive", "--queue", "catalog", "--older-than", "2d",
                            "--state", "completed", "--json"))  # fmt: skip
    assert (reply["total"], reply["attempts"]) == (10, 10)
    assert len(ids("catalog", "f-")) == 10
    for args, field in ((["--older-than", "soon"], "--older-than"),
                        (["--state", "active"], "--state")):  # fmt: skip
        with pytest.raises(CommandError) as caught:
            jobs("clean", "--archive", *args)
        assert caught.value.returncode == 2 and field in str(caught.value)
    with pytest.raises(CommandError) as caught:  # the registry's clean takes no age
        jobs("clean", "--older-than", "2d")
    assert caught.value.returncode == 2 and "--older-than" in str(caught.value)
    assert len(ids("catalog", "f-")) == 10


def test_the_dashboard_shows_the_archive_size_oldest_row_and_retention(admin_client):
    insert_rows("default", "completed", 3, 2 * DAY, prefix="d-", attempts_every=1)
    size = archive_size()
    assert (size["jobs"]["rows"], size["attempts"]["rows"]) == (3, 3)
    assert size["bytes"] > 0 and size["oldest"] < timezone.now() - 2 * DAY
    page = admin_client.get("/admin/dashboard/").content.decode()
    section = " ".join(page.split('id="jy-archive-size"')[1].split("</div>")[0].split())
    assert "3 rows, 3 attempts" in section
    assert "completed 7 days, failed 30 days, cancelled 7 days" in section
    assert "oldest job" in section and "ago" in section


@pytest.mark.slow
def test_a_million_old_rows_are_pruned_in_batches_while_the_admin_list_answers():
    """The issue's acceptance run, without timing: correctness, bounded batches, and an
    admin job list that answers (200) throughout. Batch durations: bench/archive_prune.py."""
    old, kept = 1_000_000, 2_000
    insert_rows("default", "completed", old // 2, 8 * DAY, prefix="m-", attempts_every=10)
    insert_rows("webhooks", "failed", old // 2, 31 * DAY, prefix="w-", attempts_every=10)
    insert_rows("default", "completed", kept, 6 * DAY, prefix="keep-", attempts_every=1)
    insert_rows("webhooks", "active", 100, 60 * DAY, prefix="live-")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_jobrecord; ANALYZE tasks_jobattempt")
    assert JobAttempt.objects.count() == old // 10 + kept

    user = User.objects.create_superuser("pruner", "p@example.com", "x")
    stop, answers, pages = threading.Event(), [], ["", "?state__exact=completed", "?q=m-1"]

    def browse() -> None:
        client = Client()
        client.force_login(user)
        try:
            while not stop.is_set():
                answers.append(client.get("/admin/tasks/jobrecord/" + pages[len(answers) % 3])
                               .status_code)  # fmt: skip
        finally:
            connections.close_all()

    browser = threading.Thread(target=browse)
    browser.start()
    batches = []
    try:
        summary = prune_archive(batch_size=5_000, on_batch=batches.append)
    finally:
        stop.set()
        browser.join(60)

    assert summary.total == old and summary.attempts == old // 10
    assert JobRecord.objects.count() == kept + 100
    assert len(ids("default", "keep-")) == kept and len(ids("webhooks", "live-")) == 100
    assert JobAttempt.objects.count() == kept
    assert len(batches) >= old // 5_000 and max(b.rows for b in batches) <= 5_000
    assert len(answers) >= 3 and set(answers) == {200}, answers[:20]
