"""tasks.control: cancel and remove a job in the registry and the archive together."""

import uuid

import pytest

from tasks import InvalidJobState, Queue, UnknownQueue, enqueue, get_job
from tasks.control import cancel_job, remove_job
from tasks.models import JobRecord
from tests.conftest import drain_archive, runs, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_cancel_removes_a_job_before_it_runs_and_archives_it_cancelled():
    waiting = enqueue("t-echo.catalog", {"value": "w"})  # no worker consumes catalog here
    delayed = enqueue("t-echo.catalog", {"value": "d"}, delay=60_000)
    for job in (waiting, delayed):
        cancelled = cancel_job("catalog", job.id)
        assert cancelled is not None and cancelled.id == job.id
        assert get_job("catalog", job.id) is None
    rows = {r.job_id: r for r in JobRecord.objects.all()}
    assert {(r.state, r.name) for r in rows.values()} == {("cancelled", "t-echo.catalog")}
    assert rows[delayed.id].data == {"value": "d"} and all(r.removed_at for r in rows.values())

    drain_archive()  # the `removed` events that follow do not undo it
    assert set(JobRecord.objects.values_list("state", flat=True)) == {"cancelled"}


def test_cancel_takes_a_waiting_job_of_a_paused_queue():
    Queue("catalog").pause()
    job = enqueue("t-echo.catalog", {})
    assert get_job("catalog", job.id).state == "paused"
    assert cancel_job("catalog", job.id) is not None
    assert get_job("catalog", job.id) is None
    assert JobRecord.objects.get(job_id=job.id).state == "cancelled"


def test_cancel_of_an_unknown_job_or_queue():
    assert cancel_job("catalog", "no-such-job") is None
    with pytest.raises(UnknownQueue):
        cancel_job("no-such-queue", "x")
    assert not JobRecord.objects.exists()


def test_a_running_job_is_cancelled_and_a_finished_one_is_not(worker):
    """The session worker runs -P solo: it cannot end a running job from outside, so the
    job runs its sleep out and then fails "cancelled" (docs/jobs.md, "Cancelling")."""
    key = f"t:{uuid.uuid4().hex[:8]}"
    running = enqueue("t-sleep.default", {"seconds": 2, "key": key})
    wait_for(lambda: runs(key) == 1, message="the job to start")
    cancelled = cancel_job("default", running.id)
    assert cancelled is not None and cancelled.state == "active"
    assert cancelled.cancel_requested_at is not None
    wait_for(lambda: get_job("default", running.id).state == "failed", timeout=30,
             message="the cancelled job to end")  # fmt: skip
    ended = get_job("default", running.id)
    assert (ended.failed_reason, ended.attempts_made, ended.returnvalue) == ("cancelled", 1, None)

    with pytest.raises(InvalidJobState, match="already failed"):
        cancel_job("default", running.id)
    assert not JobRecord.objects.filter(state="cancelled").exists()  # failed, not removed


def test_remove_archives_the_state_the_job_had():
    job = enqueue("t-echo.catalog", {"value": 3}, delay=60_000)
    remove_job(get_job("catalog", job.id))
    assert get_job("catalog", job.id) is None
    row = JobRecord.objects.get(job_id=job.id)
    assert (row.state, row.data) == ("delayed", {"value": 3}) and row.removed_at is not None
    with pytest.raises(InvalidJobState):
        remove_job(job)  # already gone
