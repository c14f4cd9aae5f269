"""The job archive in the admin: filters, search, no full count, detail page, actions."""

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tasks import JobFailed, enqueue, get_job
from tasks.admin_filters import EstimatedCountPaginator
from tasks.models import JobRecord
from tests.conftest import drain_archive, runs, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "/admin/tasks/jobrecord/"


def rows(client, query: str = "") -> list[str]:
    response = client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200, response.content[:500]
    return re.findall(
        r'class="field-job_id"><a href="[^"]+">([^<]+)</a>', response.content.decode()
    )


@pytest.fixture
def archive():
    now = timezone.now()
    made = [
        ("default", "alpha-1", "ping", "completed", {"to": "a@example.com"}, now),
        ("default", "alpha-2", "t-typed", "failed", {"count": 2, "user": {"id": 42}}, now),
        ("email", "beta-1", "ping", "waiting", {"to": "b@example.com"}, now - timedelta(hours=3)),
        ("catalog", "gamma-1", "t-typed", "cancelled", {}, now - timedelta(days=40)),
    ]
    JobRecord.objects.bulk_create(
        JobRecord(queue=q, job_id=i, name=n, state=s, data=d, created_at=c,
                  removed_at=now if s == "cancelled" else None)
        for q, i, n, s, d, c in made
    )  # fmt: skip


def test_it_filters_by_queue_state_job_type_time_and_removal(admin_client, archive):
    assert rows(admin_client) == ["alpha-2", "alpha-1", "beta-1", "gamma-1"]  # newest first
    assert rows(admin_client, "queue=email") == ["beta-1"]
    assert rows(admin_client, "state=failed") == ["alpha-2"]
    assert rows(admin_client, "name=ping") == ["alpha-1", "beta-1"]
    assert rows(admin_client, "queue=default&state=completed") == ["alpha-1"]
    assert rows(admin_client, "created=1h") == ["alpha-2", "alpha-1"]
    assert rows(admin_client, "created=24h") == ["alpha-2", "alpha-1", "beta-1"]
    assert rows(admin_client, "created=older") == ["gamma-1"]
    assert rows(admin_client, "removed=yes") == ["gamma-1"]
    assert rows(admin_client, "removed=no") == ["alpha-2", "alpha-1", "beta-1"]
    page = admin_client.get(CHANGELIST).content.decode()
    for choice in ("?queue=reports", "?state=delayed", "?name=t-flaky.default", "?created=7d"):
        assert choice in page  # fixed choices: no SELECT DISTINCT over the archive


def test_it_searches_by_id_and_by_data(admin_client, archive):
    assert rows(admin_client, "q=alpha") == ["alpha-2", "alpha-1"]  # id prefix
    assert rows(admin_client, "q=beta-1") == ["beta-1"]
    assert rows(admin_client, "q=a@example.com") == ["alpha-1"]  # a top-level data value
    assert rows(admin_client, "q=to%3Db@example.com") == ["beta-1"]  # key=value
    assert rows(admin_client, "q=user.id%3D42") == ["alpha-2"]  # nested, as JSON 42
    assert rows(admin_client, "q=count%3D%222%22") == []  # "2" is not 2
    assert rows(admin_client, 'q={"count": 2}') == ["alpha-2"]
    assert rows(admin_client, "q=nothing-like-it") == []


def test_it_never_counts_the_whole_table(admin_client, archive, monkeypatch):
    with CaptureQueriesContext(connection) as queries:
        rows(admin_client, "state=failed&q=alpha")
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts

    monkeypatch.setattr(EstimatedCountPaginator, "EXACT_LIMIT", 2)
    page = admin_client.get(CHANGELIST).content.decode()
    assert re.search(r"about \d+ jobs", page)  # past the exact limit: the planner's estimate


def test_the_paginator_is_exact_below_its_limit_and_estimates_above(archive, monkeypatch):
    queryset = JobRecord.objects.all()
    small = EstimatedCountPaginator(queryset, 2)
    assert (small.count, small.estimated, small.num_pages) == (4, False, 2)
    monkeypatch.setattr(EstimatedCountPaginator, "EXACT_LIMIT", 2)
    big = EstimatedCountPaginator(queryset, 2)
    assert big.count >= 3 and big.estimated


def test_the_detail_page_shows_data_result_error_trace_attempts_and_live_state(
    admin_client, worker
):
    key = f"t:{uuid.uuid4().hex[:8]}"
    job = enqueue("t-flaky.default", {"key": key, "fail_times": 1},
                  backoff={"type": "fixed", "delay": 10})  # fmt: skip
    assert job.wait_until_finished(timeout=30) == 2
    drain_archive()
    row = JobRecord.objects.get(job_id=job.id)
    page = admin_client.get(reverse("admin:tasks_jobrecord_change", args=[row.pk])).content.decode()
    assert key in page  # data
    assert "RuntimeError: failure 1" in page  # error, trace and the first attempt
    assert "Traceback" in page
    assert "failed, retried" in page and "completed" in page  # attempt history
    assert 'id="jy-live"' in page and "attempts 2 of 3" in page  # the registry, live

    # A job the recorder has not written yet opens by queue:id, from the registry alone.
    fresh = enqueue("t-echo.catalog", {"value": "live-only"}, delay=60_000)
    url = reverse("admin:tasks_jobrecord_change", args=[quote(f"catalog:{fresh.id}")])
    page = admin_client.get(url).content.decode()
    assert "live-only" in page and "Not archived yet" in page and " · due " in page
    missing = reverse("admin:tasks_jobrecord_change", args=[quote("catalog:no-such-job")])
    assert admin_client.get(missing).status_code == 302  # the admin's "does not exist"


def act(client, action: str, *records: JobRecord) -> str:
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [r.pk for r in records]},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


def test_cancel_removes_waiting_and_delayed_jobs_and_records_them_cancelled(admin_client):
    waiting = enqueue("t-echo.catalog", {})  # no worker consumes catalog here
    delayed = enqueue("t-echo.catalog", {}, delay=60_000)
    drain_archive()
    page = act(admin_client, "cancel_jobs", *JobRecord.objects.all())
    assert page.count("cancelled before it ran") == 2
    assert get_job("catalog", waiting.id) is None and get_job("catalog", delayed.id) is None
    drain_archive()  # the recorder's `removed` events do not undo the cancellation
    assert set(JobRecord.objects.values_list("state", flat=True)) == {"cancelled"}
    assert all(r.removed_at for r in JobRecord.objects.all())


def test_a_running_job_is_cancelled_not_removed(admin_client, start_worker):
    """Cancel asks a running job to stop (it fails "cancelled"); remove refuses it."""
    key = f"t:{uuid.uuid4().hex[:8]}"
    start_worker(["cleanup"], concurrency=1)
    job = enqueue("t-sleep.cleanup", {"seconds": 3, "key": key})
    wait_for(lambda: runs(key) == 1)
    drain_archive()
    record = JobRecord.objects.get(job_id=job.id)
    page = act(admin_client, "remove_jobs", record)
    assert "is active" in page
    page = act(admin_client, "cancel_jobs", record)
    assert "asked to stop" in page
    wait_for(lambda: get_job("cleanup", job.id).state == "failed", message="the cancel")
    assert get_job("cleanup", job.id).failed_reason == "cancelled"


def test_retry_and_remove_go_through_the_registry(admin_client, worker):
    job = enqueue("t-permanent.default", {})
    with pytest.raises(JobFailed):
        job.wait_until_finished(timeout=30)
    drain_archive()
    record = JobRecord.objects.get(job_id=job.id)
    page = act(admin_client, "retry_jobs", record)
    assert "sent again with a fresh attempt budget" in page
    with pytest.raises(JobFailed):
        job.wait_until_finished(timeout=30)  # it ran a second time (and failed again)
    drain_archive()
    assert record.attempts.count() == 2

    # The detail page's buttons do the same.
    url = reverse("admin:tasks_jobrecord_operate", args=[quote(f"default:{job.id}")])
    assert admin_client.get(url).status_code == 405
    response = admin_client.post(url, {"action": "remove"}, follow=True)
    assert "removed from the registry" in response.content.decode()
    assert get_job("default", job.id) is None
    record.refresh_from_db()
    assert record.removed_at is not None and record.state == "failed"  # the archive keeps it
    page = act(admin_client, "retry_jobs", record)
    assert "not in the registry any more" in page


def test_the_archive_is_read_only(admin_client, archive):
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    record = JobRecord.objects.first()
    page = admin_client.get(reverse("admin:tasks_jobrecord_change", args=[record.pk])).content
    assert b'name="_save"' not in page
