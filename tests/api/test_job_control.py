"""Issue 14 over HTTP, against real workers: cancel a running job, read a job's logs,
promote a delayed job, LIFO enqueue.

Each worker test uses a queue of its own (cleanup, catalog, notifications, webhooks: the
session worker consumes default, email and reports), so no other worker takes its jobs.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tasks import Queue, enqueue, get_job
from tests.api.conftest import assert_error
from tests.conftest import order, runs, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

#: The grace period the cancel tests give their workers (JOBYARD_CANCEL_GRACE_MS).
GRACE_MS = 3000


def key() -> str:
    return f"t:{uuid.uuid4().hex[:8]}"


def cancel_over_api(api, queue: str, job_id: str) -> dict:
    response = api.post_json(f"/api/v1/jobs/{queue}/{job_id}/cancel")
    assert response.status_code == 202, response.content[:500]
    reply = response.json()
    assert (reply["cancelled"], reply["job"]["state"]) == ("cancelling", "active")
    assert reply["cancelRequestedAt"] is not None
    return reply


def ended_cancelled(queue: str, job_id: str, asked_ms: int) -> int:
    """Wait (generously) for the job to end; check it failed "cancelled" and was not
    retried; the ms from the cancel to its end by the registry's own clock (Redis TIME)."""
    wait_for(lambda: get_job(queue, job_id).state not in ("active", "waiting"), timeout=60,
             message="the cancelled job to end")  # fmt: skip
    job = get_job(queue, job_id)
    assert (job.state, job.failed_reason, job.attempts_made) == ("failed", "cancelled", 1)
    return job.finished_on - asked_ms


def still_failed(queue: str, job_id: str, run_key: str) -> None:
    """Not retried: still failed and run once, well after its back-off would have passed."""
    time.sleep(1.0)  # the tests' back-offs are 50 ms (JOBYARD_BACKOFF_SCALE)
    assert get_job(queue, job_id).state == "failed" and runs(run_key) == 1


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ignore", "busy"])
def test_a_running_60_s_job_cancelled_from_the_api_ends_within_the_grace(api, start_worker, how):
    """The issue's acceptance: a 60 s job that never looks at the cancel (a sleep, a busy
    loop) is killed once the grace is over; it ends failed "cancelled" within the grace
    + 1 s, is not retried, and its worker runs the next job."""
    start_worker(["cleanup"], concurrency=1, pool="prefork",
                 env={"JOBYARD_CANCEL_GRACE_MS": str(GRACE_MS)})  # fmt: skip
    run = key()
    job = enqueue("t-patient.cleanup", {"seconds": 60, "via": how, "key": run}, attempts=3)
    wait_for(lambda: runs(run) == 1, message="the job to start")
    reply = cancel_over_api(api, "cleanup", job.id)
    took = ended_cancelled("cleanup", job.id, reply["cancelRequestedAt"])
    print(f"cancel of a 60 s job ({how}) ended it {took} ms after the request (grace {GRACE_MS})")
    # Killed after the grace, far before the job's own 60 s. No tighter bound here: a timed
    # assertion fails on a loaded machine (the + 1 s figures are in docs/benchmarks.md).
    assert GRACE_MS <= took < 30_000

    after = enqueue("t-echo.cleanup", {"value": "next"})  # the worker keeps serving
    assert after.wait_until_finished(timeout=30) == "next"
    still_failed("cleanup", job.id, run)


@pytest.mark.slow
@pytest.mark.parametrize("via", ["progress", "log", "flag"])
def test_a_job_that_looks_stops_at_once_without_being_killed(api, start_worker, via):
    """Cooperative: JobCancelled at its next update_progress or log call, or the job sees
    job.cancelled and returns; it fails "cancelled" long before the grace is over."""
    worker = start_worker(["catalog"], concurrency=1, pool="prefork",
                          env={"JOBYARD_CANCEL_GRACE_MS": "30000"})  # fmt: skip
    run = key()
    job = enqueue("t-patient.catalog", {"seconds": 60, "via": via, "key": run})
    wait_for(lambda: runs(run) == 1, message="the job to start")
    reply = cancel_over_api(api, "catalog", job.id)
    took = ended_cancelled("catalog", job.id, reply["cancelRequestedAt"])
    print(f"cooperative cancel ({via}) ended the job {took} ms after the request")
    assert took < 30_000  # not the kill: the job stopped itself
    ended = get_job("catalog", job.id)
    assert ended.returnvalue is None and ended.worker.startswith(worker.name)
    still_failed("catalog", job.id, run)


def test_cancel_removes_a_job_that_has_not_started(api):
    waiting = enqueue("t-echo.webhooks", {})  # no worker consumes webhooks here
    delayed = enqueue("t-echo.webhooks", {}, delay=60_000)
    for job in (waiting, delayed):
        response = api.post_json(f"/api/v1/jobs/webhooks/{job.id}/cancel")
        assert response.status_code == 200, response.content[:500]
        assert response.json() == {"jobId": job.id, "queue": "webhooks", "cancelled": "removed",
                                   "cancelRequestedAt": None, "job": None}  # fmt: skip
        assert get_job("webhooks", job.id) is None
    assert_error(api.post_json("/api/v1/jobs/webhooks/no-such-job/cancel"), 404, "job_not_found")


def test_cancel_of_a_finished_job_is_a_409_and_a_read_token_a_403(api, reader, worker):
    job = enqueue("t-echo.default", {"value": 1})
    job.wait_until_finished(timeout=30)
    error = assert_error(api.post_json(f"/api/v1/jobs/default/{job.id}/cancel"), 409)
    assert "already completed" in error["message"]
    assert_error(reader.post_json(f"/api/v1/jobs/default/{job.id}/cancel"), 403)


# --- logs ---------------------------------------------------------------------------------


def test_a_jobs_log_lines_are_served_in_pages(api, reader, start_worker):
    start_worker(["notifications"], concurrency=1, pool="solo")
    job = enqueue("t-patient.notifications", {"seconds": 0.3, "via": "log"})
    job.wait_until_finished(timeout=30)
    whole = reader.get(f"/api/v1/jobs/notifications/{job.id}/logs").json()
    assert whole["count"] == len(whole["logs"]) >= 2
    assert whole["logs"][:2] == ["step 1", "step 2"]
    page = reader.get(f"/api/v1/jobs/notifications/{job.id}/logs?start=1&end=1").json()
    assert page == {"logs": ["step 2"], "count": whole["count"]}

    assert_error(reader.get(f"/api/v1/jobs/notifications/{job.id}/logs?start=3&end=1"), 422)
    assert_error(reader.get(f"/api/v1/jobs/notifications/{job.id}/logs?start=x"), 422)
    assert_error(reader.get("/api/v1/jobs/notifications/no-such-job/logs"), 404)

    # The log lives exactly as long as the job: removing the job removes it.
    assert api.delete(f"/api/v1/jobs/notifications/{job.id}").status_code == 200
    from tasks import keys
    from tasks.connection import get_redis

    assert not get_redis().exists(keys.logs("notifications", job.id))


# --- promote and LIFO ---------------------------------------------------------------------


def test_promote_runs_a_delayed_job_now(api, reader, start_worker):
    start_worker(["webhooks"], concurrency=1, pool="solo")
    job = enqueue("t-echo.webhooks", {"value": "soon"}, delay=3_600_000)
    assert_error(reader.post_json(f"/api/v1/jobs/webhooks/{job.id}/promote"), 403)
    response = api.post_json(f"/api/v1/jobs/webhooks/{job.id}/promote")
    assert response.status_code == 200, response.content[:500]
    assert response.json()["state"] in ("waiting", "active", "completed")
    assert job.wait_until_finished(timeout=30) == "soon"
    error = assert_error(api.post_json(f"/api/v1/jobs/webhooks/{job.id}/promote"), 409)
    assert "not delayed" in error["message"]


def test_a_lifo_job_goes_to_the_front_of_its_queue(api, start_worker):
    run = key()
    Queue("webhooks").pause()  # line them up first
    fifo = [enqueue("t-record.webhooks", {"key": run}) for _ in range(3)]
    response = api.post_json("/api/admin/jobs/trigger", {"jobType": "t-record.webhooks",
                             "key": run, "options": {"lifo": True}})  # fmt: skip
    assert response.status_code == 202, response.content[:500]
    lifo = response.json()["jobId"]
    assert get_job("webhooks", lifo).opts["lifo"] is True
    Queue("webhooks").resume()
    start_worker(["webhooks"], concurrency=1, pool="solo")
    wait_for(lambda: runs(run) == 4, message="the four jobs to run")
    assert order(run) == [lifo, *(j.id for j in fifo)]

    error = assert_error(api.post_json("/api/admin/jobs/trigger", {
        "jobType": "t-record.webhooks", "key": run, "options": {"lifo": "yes"}}), 422)  # fmt: skip
    assert error["fields"][0]["field"] == "options.lifo"
