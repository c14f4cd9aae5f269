"""Status, jobs, queues and workers over HTTP, against a real worker, with DESIGN.md's shapes."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from tasks import JobFailed, enqueue, get_job
from tasks.states import STATES
from tests.api.conftest import assert_error
from tests.conftest import runs, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

#: DESIGN.md: {id, name, queue, state, progress, data, returnvalue, attemptsMade,
#: failedReason, timestamps}; the rest is what the seeds' job JSON also carried.
JOB_KEYS = {"id", "name", "queue", "state", "progress", "data", "returnvalue", "attemptsMade",
            "failedReason", "timestamps", "opts", "attempts", "stacktrace", "priority", "worker",
            "stalledCount", "schedule"}  # fmt: skip
TIMESTAMPS = {"createdAt", "processedOn", "finishedOn", "delayUntil"}
COUNTS = set(STATES)


def assert_job(body: dict) -> None:
    assert set(body) == JOB_KEYS
    assert set(body["timestamps"]) == TIMESTAMPS
    assert body["state"] in STATES


def heartbeat(worker) -> None:
    """clean_registry removed every heartbeat: wait for the worker's next one."""
    from tasks import get_workers

    wait_for(lambda: any(w["name"] == worker.name for w in get_workers()),
             message="the worker's heartbeat")  # fmt: skip


def finished(job_id: str, queue: str = "default") -> None:
    wait_for(lambda: (j := get_job(queue, job_id)) and j.state in ("completed", "failed"),
             message=f"job {job_id} to finish")  # fmt: skip


# --- GET /api/admin/jobs/status ------------------------------------------------------------


def test_status_gives_queue_stats_and_the_recent_jobs(api, worker):
    done = enqueue("t-echo.default", {"value": 1})
    done.wait_until_finished(timeout=30)
    bad = enqueue("t-permanent.email", {})
    with pytest.raises(JobFailed):
        bad.wait_until_finished(timeout=30)
    later = enqueue("t-echo.catalog", {}, delay=60_000)
    waiting = enqueue("t-echo.catalog", {"value": "w"})

    response = api.get("/api/admin/jobs/status")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"queueStats", "recentJobs", "queues"}
    assert body["queueStats"] == {"waiting": 1, "active": 0, "completed": 1, "failed": 1,
                                  "delayed": 1, "paused": 0, "waiting-children": 0}  # fmt: skip
    assert set(body["queues"]) == set(settings.JOBYARD_QUEUES)
    recent = {j["id"]: j for j in body["recentJobs"]}
    for job in body["recentJobs"]:
        assert_job(job)
    assert {done.id, bad.id, waiting.id} <= set(recent)
    assert later.id not in recent  # delayed jobs are not recent until they run
    assert recent[done.id]["state"] == "completed" and recent[done.id]["returnvalue"] == 1
    assert recent[bad.id]["failedReason"].startswith("PermanentError")
    newest_first = [j["timestamps"]["finishedOn"] or j["timestamps"]["createdAt"]
                    for j in body["recentJobs"]]  # fmt: skip
    assert newest_first == sorted(newest_first, reverse=True)


def test_status_keeps_recent_jobs_to_twenty_newest(api):
    jobs = []
    for i in range(30):
        jobs.append(enqueue("t-echo.catalog", {"value": i}))
        time.sleep(0.002)  # registry times are in ms: "newest" needs distinct ones
    body = api.get("/api/admin/jobs/status").json()
    assert len(body["recentJobs"]) == 20
    assert {j["id"] for j in body["recentJobs"]} == {j.id for j in jobs[-20:]}


def test_status_finds_one_job_by_id_across_queues(api, worker):
    job = enqueue("t-echo.email", {"value": "mail"}, job_id=f"find-{uuid.uuid4().hex[:6]}")
    job.wait_until_finished(timeout=30)
    response = api.get("/api/admin/jobs/status", {"jobId": job.id})
    assert response.status_code == 200
    body = response.json()
    assert_job(body)
    assert (body["queue"], body["state"], body["returnvalue"]) == ("email", "completed", "mail")
    assert api.get("/api/admin/jobs/status", {"jobId": job.id, "queue": "email"}).json()["id"]
    assert_error(api.get("/api/admin/jobs/status", {"jobId": job.id, "queue": "default"}), 404,
                 "job_not_found")  # fmt: skip
    assert_error(api.get("/api/admin/jobs/status", {"jobId": "nobody"}), 404, "job_not_found")
    assert_error(api.get("/api/admin/jobs/status", {"jobId": "../x y"}), 404)
    assert_error(api.get("/api/admin/jobs/status", {"queue": "nope"}), 404, "queue_not_found")


# --- /api/v1/jobs/{queue}/{jobId} ------------------------------------------------------------


def test_a_job_has_the_design_shape_with_progress_and_result(api, worker):
    job = enqueue("t-progress.default", {"steps": 2})
    assert job.wait_until_finished(timeout=30) == "done"
    response = api.get(f"/api/v1/jobs/default/{job.id}")
    assert response.status_code == 200
    body = response.json()
    # One job's page adds its place in a flow (docs/flows.md): none here.
    assert (body.pop("parent"), body.pop("children")) == (None, [])
    assert_job(body)
    assert body["name"] == "t-progress.default" and body["data"] == {"steps": 2}
    assert body["progress"] == {"stage": "done", "steps": 2}
    assert (body["returnvalue"], body["attemptsMade"], body["failedReason"]) == ("done", 1, None)
    ts = body["timestamps"]
    assert ts["createdAt"] <= ts["processedOn"] <= ts["finishedOn"]


def test_an_unknown_job_or_queue_is_a_json_404(api):
    assert_error(api.get("/api/v1/jobs/default/nobody"), 404, "job_not_found")
    assert_error(api.get("/api/v1/jobs/nowhere/nobody"), 404, "queue_not_found")
    assert_error(api.get("/api/v1/jobs/default/%20bad%20id"), 404, "job_not_found")
    assert_error(api.post_json("/api/v1/jobs/default/nobody/retry"), 404, "job_not_found")
    assert_error(api.delete("/api/v1/jobs/default/nobody"), 404, "job_not_found")


def test_retry_sends_a_failed_job_again_and_refuses_others(api, worker):
    key = f"t:{uuid.uuid4().hex[:8]}"
    job = enqueue("t-flaky.default", {"key": key, "fail_times": 1}, attempts=1)
    with pytest.raises(JobFailed):
        job.wait_until_finished(timeout=30)
    response = api.post_json(f"/api/v1/jobs/default/{job.id}/retry")
    assert response.status_code == 200
    assert_job(response.json())
    assert response.json()["attemptsMade"] == 0
    finished(job.id)
    assert get_job("default", job.id).state == "completed" and runs(key) == 2
    error = assert_error(api.post_json(f"/api/v1/jobs/default/{job.id}/retry"), 409,
                         "invalid_job_state")  # fmt: skip
    assert "not failed" in error["message"]


def test_delete_removes_a_job_but_not_an_active_one(api, worker):
    done = enqueue("t-echo.default", {})
    done.wait_until_finished(timeout=30)
    response = api.delete(f"/api/v1/jobs/default/{done.id}")
    assert response.status_code == 200
    assert response.json() == {"jobId": done.id, "queue": "default", "removed": True}
    assert_error(api.get(f"/api/v1/jobs/default/{done.id}"), 404)

    key = f"t:{uuid.uuid4().hex[:8]}"
    running = enqueue("t-sleep.default", {"seconds": 2, "key": key})
    wait_for(lambda: runs(key) == 1)
    assert_error(api.delete(f"/api/v1/jobs/default/{running.id}"), 409, "invalid_job_state")
    finished(running.id)


# --- queues --------------------------------------------------------------------------------


def test_queues_gives_every_queues_metrics(api, worker):
    enqueue("t-echo.default", {}).wait_until_finished(timeout=30)
    heartbeat(worker)
    body = api.get("/api/v1/queues").json()
    assert list(body) == ["queues"]
    assert set(body["queues"]) == {"default", "email", "notifications", "webhooks", "reports",
                                   "cleanup", "catalog"}  # fmt: skip
    default = body["queues"]["default"]
    assert {"counts", "completedPerMinute", "failedPerMinute", "processedPerMinute",
            "failureRate", "retriedPerMinute", "attemptFailureRate", "processingMs",
            "waitingMs", "workers", "utilization", "lastHour", "paused", "queue"} == set(default)  # fmt: skip
    assert set(default["counts"]) == COUNTS and default["counts"]["completed"] == 1
    assert default["completedPerMinute"] >= 1 and default["workers"] >= 1
    assert set(default["processingMs"]) == {"mean", "p95", "samples"}


def test_a_queue_gives_counts_recent_jobs_and_schedules(api, worker):
    done = enqueue("t-echo.default", {"value": 1})
    done.wait_until_finished(timeout=30)
    bad = enqueue("t-permanent.default", {})
    with pytest.raises(JobFailed):
        bad.wait_until_finished(timeout=30)
    weekly = CrontabSchedule.objects.create(minute="0", hour="0", day_of_week="0",
                                            timezone="UTC")  # fmt: skip
    PeriodicTask.objects.create(name="weekly-echo", task="t-echo.default", crontab=weekly)
    PeriodicTask.objects.create(name="mail-echo", task="t-echo.email", crontab=weekly)

    body = api.get("/api/v1/queues/default").json()
    assert {"counts", "recent", "scheduled"} <= set(body)
    assert set(body["counts"]) == COUNTS
    assert set(body["recent"]) == {"completed", "failed", "active"}
    assert [j["id"] for j in body["recent"]["completed"]] == [done.id]
    assert [j["id"] for j in body["recent"]["failed"]] == [bad.id]
    for job in body["recent"]["completed"] + body["recent"]["failed"]:
        assert_job(job)
    (schedule,) = body["scheduled"]  # the email queue's schedule is not listed here
    assert {"key", "pattern", "next"} <= set(schedule)
    assert (schedule["key"], schedule["pattern"]) == ("weekly-echo", "0 0 * * 0")
    # epoch ms, as the seeds show it and as every other API timestamp is
    assert isinstance(schedule["next"], int) and schedule["next"] > time.time() * 1000
    assert_error(api.get("/api/v1/queues/nope"), 404, "queue_not_found")


def test_a_schedule_that_never_fires_is_listed_not_a_500(api):
    """`0 0 30 2 *` (February 30th), as an old row holds it: listing it raised croniter's
    error, so every GET of its queue answered 500."""
    never = CrontabSchedule.objects.create(minute="0", hour="0", day_of_month="30",
                                           month_of_year="2", timezone="UTC")  # fmt: skip
    PeriodicTask.objects.create(name="feb-30", task="t-echo.default", crontab=never)
    response = api.get("/api/v1/queues/default")
    assert response.status_code == 200, response.content[:500]
    (schedule,) = response.json()["scheduled"]
    assert (schedule["key"], schedule["pattern"], schedule["next"]) == (
        "feb-30", "0 0 30 2 *", None)  # fmt: skip
    assert "never fires" in schedule["lastError"]


def test_stats_gives_counts_per_state(api):
    enqueue("t-echo.catalog", {})
    enqueue("t-echo.catalog", {}, delay=60_000)
    response = api.get("/api/v1/queues/catalog/stats")
    assert response.json() == {"waiting": 1, "active": 0, "completed": 0, "failed": 0,
                               "delayed": 1, "paused": 0, "waiting-children": 0}  # fmt: skip
    assert_error(api.get("/api/v1/queues/nope/stats"), 404, "queue_not_found")


def test_pause_and_resume_steer_the_workers(api, worker):
    assert api.post_json("/api/v1/queues/default/pause").json() == {"queue": "default",
                                                                    "paused": True}  # fmt: skip
    try:
        job = enqueue("t-echo.default", {"value": 5})
        assert api.get("/api/v1/queues/default/stats").json()["paused"] == 1
        assert api.get("/api/v1/queues/default").json()["paused"] is True
    finally:
        resumed = api.post_json("/api/v1/queues/default/resume").json()
    assert resumed == {"queue": "default", "paused": False, "resumed": 1}
    assert job.wait_until_finished(timeout=30) == 5


def test_retry_failed_sends_every_dead_letter_again(api, worker):
    key = f"t:{uuid.uuid4().hex[:8]}"
    jobs = [enqueue("t-flaky.default", {"key": f"{key}{i}", "fail_times": 1}, attempts=1)
            for i in range(3)]  # fmt: skip
    for job in jobs:
        with pytest.raises(JobFailed):
            job.wait_until_finished(timeout=30)
    body = api.post_json("/api/v1/queues/default/retry-failed").json()
    assert body == {"queue": "default", "retried": 3}
    for job in jobs:  # the second run of each succeeds
        finished(job.id)
        assert get_job("default", job.id).state == "completed"
    assert api.post_json("/api/v1/queues/default/retry-failed").json()["retried"] == 0


def test_clean_removes_old_jobs_of_one_state(api, worker):
    for i in range(3):
        enqueue("t-echo.default", {"value": i}).wait_until_finished(timeout=30)
    kept = enqueue("t-echo.default", {}, delay=60_000)
    assert api.post_json("/api/v1/queues/default/clean", {"grace": 3_600_000}).json()[
        "removed"] == 0  # fmt: skip
    response = api.post_json("/api/v1/queues/default/clean", {"state": "completed", "limit": 2})
    body = response.json()
    assert (body["queue"], body["state"], body["removed"], len(body["jobIds"])) == (
        "default", "completed", 2, 2)  # fmt: skip
    no_body = api.generic("POST", "/api/v1/queues/default/clean")  # as curl -X POST sends
    assert no_body.json()["removed"] == 1  # the defaults: every completed job
    assert get_job("default", kept.id).state == "delayed"
    for bad, field in (({"state": "active"}, "state"), ({"grace": -1}, "grace"),
                       ({"limit": 0}, "limit"), ({"colour": 1}, "colour")):  # fmt: skip
        error = assert_error(api.post_json("/api/v1/queues/default/clean", bad), 422)
        assert [f["field"] for f in error["fields"]] == [field]


def test_a_queue_lists_its_jobs_by_state_and_page(api):
    # Ids in order: jobs sent within one ms are ordered by id.
    jobs = [enqueue("t-echo.catalog", {"value": i}, job_id=f"page-{i}") for i in range(5)]
    page = api.get("/api/v1/queues/catalog/jobs", {"state": "waiting", "start": 1, "end": 2})
    body = page.json()
    assert [j["id"] for j in body["jobs"]] == [jobs[1].id, jobs[2].id]
    assert (body["start"], body["end"], body["states"]) == (1, 2, ["waiting"])
    assert len(api.get("/api/v1/queues/catalog/jobs").json()["jobs"]) == 5
    assert_error(api.get("/api/v1/queues/catalog/jobs", {"state": "lost"}), 422)
    assert_error(api.get("/api/v1/queues/catalog/jobs", {"start": "x"}), 422)
    assert_error(api.get("/api/v1/queues/catalog/jobs", {"start": 5, "end": 2}), 422)
    assert_error(api.get("/api/v1/queues/catalog/jobs", {"end": 5000}), 422)


# --- workers and job types -------------------------------------------------------------------


def test_workers_lists_each_live_worker(api, worker):
    heartbeat(worker)
    body = api.get("/api/v1/workers").json()
    (mine,) = [w for w in body["workers"] if w["name"] == worker.name]
    assert {"host", "queues", "concurrency", "running", "paused", "lastHeartbeat"} <= set(mine)
    assert sorted(mine["queues"]) == sorted(worker.queues)
    assert mine["concurrency"] == worker.concurrency and mine["paused"] == []


def test_job_types_lists_each_declared_type_with_its_parameters(api):
    types = {t["name"]: t for t in api.get("/api/v1/job-types").json()["jobTypes"]}
    assert types["ping"]["queue"] == "default"
    typed = types["t-typed"]["parameters"]
    assert typed["required"] == ["count"] and "ratio" in typed["properties"]
    assert types["t-typed"]["defaults"]["attempts"] == 1


# --- errors ----------------------------------------------------------------------------------


def test_a_wrong_method_is_a_json_405_and_an_unknown_path_a_json_404(api):
    response = api.put("/api/v1/queues/default/stats")
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET, HEAD"
    assert_error(api.get("/api/admin/jobs/trigger"), 405)
    assert_error(api.get("/api/v1/nowhere"), 404, "path_not_found")
    assert_error(api.get("/api/v1/queues/"), 404, "path_not_found")


@pytest.fixture
def redis_down(settings):
    """The registry's Redis unreachable: a port nothing listens on."""
    from tasks.connection import _client_for_pid

    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    _client_for_pid.cache_clear()
    yield
    _client_for_pid.cache_clear()


def test_redis_down_is_a_json_503(api, redis_down):
    for response in (api.get("/api/v1/queues/default/stats"), api.get("/api/admin/jobs/status"),
                     api.post_json("/api/admin/jobs/trigger", {"jobType": "ping"})):  # fmt: skip
        assert_error(response, 503, "redis_unavailable")
