"""The seed apps' own API shapes (issue #14, part 7): clients written against the seeds
call these paths with a read token and read these shapes."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from tasks import Queue, enqueue, get_job, keys, scripts
from tasks.connection import get_redis
from tasks.states import STATES
from tests.api.conftest import assert_error
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

COUNTS = set(STATES)


def test_the_api_boilerplates_queue_stats_are_counts_not_a_job_called_stats(reader):
    enqueue("t-echo.catalog", {}, delay=600_000)  # nobody consumes catalog here
    body = reader.get("/api/v1/jobs/catalog/stats").json()
    assert set(body) == COUNTS
    assert body == Queue("catalog").counts() and body["delayed"] >= 1
    assert_error(reader.get("/api/v1/jobs/nope/stats"), 404, "queue_not_found")
    # A job's own route still answers beside it.
    job = enqueue("t-echo.catalog", {}, delay=600_000)
    assert reader.get(f"/api/v1/jobs/catalog/{job.id}").json()["id"] == job.id


def test_the_pricing_engines_metrics_give_each_queues_counts(reader, anonymous):
    enqueue("t-echo.catalog", {}, delay=600_000)
    response = reader.get("/api/jobs/metrics")
    assert response.status_code == 200
    metrics = response.json()["metrics"]
    from django.conf import settings

    assert set(metrics) == set(settings.JOBYARD_QUEUES)
    for counts in metrics.values():
        assert set(counts) == COUNTS  # waiting, active, completed, failed, delayed, paused
    assert metrics["catalog"]["delayed"] >= 1
    assert_error(anonymous.get("/api/jobs/metrics"), 401)


def test_the_health_platforms_queue_page_has_counts_recent_and_schedules_in_ms(reader):
    weekly = CrontabSchedule.objects.create(minute="0", hour="0", day_of_week="0", timezone="UTC")
    PeriodicTask.objects.create(name="weekly-catalog-echo", task="t-echo.catalog", crontab=weekly)
    enqueue("t-echo.catalog", {}, delay=600_000)
    body = reader.get("/api/admin/jobs/catalog").json()
    assert {"counts", "recent", "scheduled"} <= set(body)
    assert set(body["counts"]) == COUNTS
    assert set(body["recent"]) == {"completed", "failed", "active"}
    (schedule,) = body["scheduled"]
    assert {"key", "pattern", "next"} <= set(schedule)
    assert (schedule["key"], schedule["pattern"]) == ("weekly-catalog-echo", "0 0 * * 0")
    # `next` is epoch ms, as the seed shows it: a Sunday midnight UTC within the week.
    assert isinstance(schedule["next"], int)
    upcoming = time.gmtime(schedule["next"] / 1000)
    assert (upcoming.tm_wday, upcoming.tm_hour, upcoming.tm_min) == (6, 0, 0)
    assert 0 < schedule["next"] - time.time() * 1000 <= 7 * 86_400_000
    # The platform's own paths keep answering beside the queue page.
    assert reader.get("/api/admin/jobs/status").status_code == 200
    assert_error(reader.get("/api/admin/jobs/nope"), 404, "queue_not_found")


def test_a_running_job_reads_its_configured_attempts_and_those_made(worker):
    key = f"attempts:{uuid.uuid4().hex}"
    job = enqueue("t-attempts", {"key": key})  # the project's default policy: 3 attempts
    job.wait_until_finished(timeout=60)
    seen = [json.loads(raw) for raw in get_redis().lrange(key, 0, -1)]
    assert seen == [{"attempts": 3, "attemptsMade": made, "optsAttempts": 3} for made in (0, 1, 2)]

    key = f"attempts:{uuid.uuid4().hex}"
    job = enqueue("t-attempts", {"key": key}, attempts=2)
    job.wait_until_finished(timeout=60)
    seen = [json.loads(raw) for raw in get_redis().lrange(key, 0, -1)]
    assert [(s["attempts"], s["optsAttempts"], s["attemptsMade"]) for s in seen] == [
        (2, 2, 0), (2, 2, 1)]  # fmt: skip
    assert get_job("default", job.id).attempts_made == 2


def _stuck_active_job(queue: str = "catalog") -> str:
    """A job left active by a worker that is gone: claimed, then its lock expired."""
    job = enqueue("t-echo.catalog", {})
    assert isinstance(scripts.claim(queue, job.id, "gone-worker", uuid.uuid4().hex), scripts.Claim)
    get_redis().delete(keys.lock(queue, job.id))
    assert get_job(queue, job.id).state == "active"
    return job.id


def test_cleaning_active_jobs_is_refused_with_the_safe_fix_named(api):
    error = assert_error(api.post_json("/api/v1/queues/catalog/clean", {"state": "active"}), 422)
    assert "recover-stalled" in error["message"] and error["fields"][0]["field"] == "state"
    with pytest.raises(CommandError, match="--state: .*recover-stalled"):
        call_command("jobs", "clean", "--queue", "catalog", "--state", "active")


def test_recover_stalled_sends_again_only_jobs_whose_lock_expired(api, reader):
    stuck = _stuck_active_job()
    live = enqueue("t-echo.catalog", {})
    assert isinstance(
        scripts.claim("catalog", live.id, "live-worker", uuid.uuid4().hex), scripts.Claim
    )
    assert_error(reader.post_json("/api/v1/queues/catalog/recover-stalled"), 403)
    body = api.post_json("/api/v1/queues/catalog/recover-stalled").json()
    assert body == {"queue": "catalog", "action": "requeue", "recovered": 1, "jobIds": [stuck]}
    assert get_job("catalog", stuck).state == "waiting"
    assert get_job("catalog", live.id).state == "active"  # its worker's lock is alive

    failed = _stuck_active_job()
    body = api.post_json("/api/v1/queues/catalog/recover-stalled", {"action": "fail"}).json()
    assert body["jobIds"] == [failed] and body["action"] == "fail"
    job = get_job("catalog", failed)
    assert job.state == "failed" and "failed by an operator" in job.failed_reason
    assert_error(api.post_json("/api/v1/queues/catalog/recover-stalled", {"action": "x"}), 422)


def test_recover_stalled_from_the_cli(capsys):
    stuck = _stuck_active_job()
    call_command("jobs", "recover-stalled", "catalog", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["jobIds"] == [stuck] and out["recovered"] == 1
    wait_for(lambda: get_job("catalog", stuck).state == "waiting", message="sent again")


def test_recover_stalled_from_the_admin_dashboard(admin_client):
    stuck = _stuck_active_job()
    page = admin_client.get(reverse("admin:jobyard_dashboard")).content.decode()
    catalog = page.split('id="queue-catalog"')[1].split("</section>")[0]
    action = reverse("admin:jobyard_queue_action", args=["catalog", "recover-stalled"])
    assert f'action="{action}"' in catalog and ">Recover stalled</button>" in catalog
    response = admin_client.post(action, follow=True)
    assert "1 stalled job(s)" in response.content.decode()
    assert get_job("catalog", stuck).state == "waiting"
