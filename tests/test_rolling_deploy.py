"""A rolling deploy, half done: the web sends a job type an old worker does not know yet.

The old worker hands the job back without burning an attempt (stock Celery would discard
it as "unregistered"), says so once in its log and on the dashboard, and a worker that
knows the type runs it."""

from __future__ import annotations

import time

import pytest

from tasks import enqueue, get_job, unknown_job_types
from tasks.job import Job
from tests.conftest import wait_for

TYPE = "t-echo.cleanup"


@pytest.mark.django_db(transaction=True)
def test_an_unknown_type_is_handed_back_then_run_by_a_worker_that_knows_it(
    start_worker, admin_client, tmp_path
) -> None:
    log = tmp_path / "old-worker.log"
    old = start_worker(["cleanup"], output=log,
                       env={"JOBYARD_TEST_WITHOUT": TYPE, "JOBYARD_UNKNOWN_TYPE_DELAY_MS": "200"})  # fmt: skip
    job = enqueue(TYPE, {"value": 3})

    warned = wait_for(lambda: [u for u in unknown_job_types() if u["jobType"] == TYPE])
    assert warned[0]["worker"].startswith(old.name)
    time.sleep(1)  # handed back a few times by now: never an attempt, never failed
    held = get_job("cleanup", job.id)
    assert held.state in ("delayed", "waiting", "active") and held.attempts_made == 0
    page = admin_client.get("/admin/dashboard/").content.decode()
    assert TYPE in page and "unknown to worker" in page

    start_worker(["cleanup"])  # the new release's worker
    assert Job(queue="cleanup", id=job.id).wait_until_finished(30) == 3
    done = get_job("cleanup", job.id)
    assert done.attempts_made == 1 and done.failed_reason is None
    old.stop()
    assert log.read_text().count("job_type_unknown") == 1  # once per worker and type


@pytest.mark.django_db(transaction=True)
def test_a_type_no_worker_ever_learns_fails_naming_the_cause(start_worker) -> None:
    start_worker(["cleanup"], env={
        "JOBYARD_TEST_WITHOUT": TYPE, "JOBYARD_UNKNOWN_TYPE_DELAY_MS": "100",
        "JOBYARD_UNKNOWN_TYPE_GRACE_MS": "1000",
    })  # fmt: skip
    job = enqueue(TYPE, {"value": 1})
    failed = wait_for(
        lambda: (j := get_job("cleanup", job.id)) and j.state == "failed" and j, timeout=30
    )
    assert f"job type {TYPE!r} is unknown" in failed.failed_reason
    assert failed.attempts_made == 0
