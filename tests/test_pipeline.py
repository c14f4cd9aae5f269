"""A job sent from Django is run by a real worker process and its result observed."""

import time

import pytest
from django.db import transaction

from tasks import InvalidJobData, enqueue, get_job


@pytest.mark.django_db(transaction=True)
def test_it_runs_ping_on_a_real_worker(worker):
    sent = time.time()
    job = enqueue("ping", {"sent_at": sent})
    pong = job.wait_until_finished(timeout=30)
    assert pong["pong"] is True
    assert pong["jobId"] == job.id
    assert pong["sentAt"] == sent
    assert pong["queueMs"] >= 0
    stored = get_job("default", job.id)
    assert stored.state == "completed"
    assert stored.returnvalue == pong
    assert stored.worker.startswith(worker.name)


@pytest.mark.django_db(transaction=True)
def test_it_sends_nothing_until_the_transaction_commits(worker):
    with transaction.atomic():
        job = enqueue("ping", {})
        time.sleep(0.5)
        assert get_job("default", job.id) is None  # not written, so no worker can see it
    assert job.wait_until_finished(timeout=30)["jobId"] == job.id


@pytest.mark.django_db(transaction=True)
def test_it_sends_nothing_when_the_transaction_rolls_back(worker):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        job = enqueue("ping", {})
        raise Abort
    assert get_job("default", job.id) is None


@pytest.mark.django_db(transaction=True)
def test_it_adopts_a_job_sent_the_celery_way(worker):
    """`task.delay()`, send_task, Flower and celery-beat's own scheduler still work."""
    from project.celery import app
    from tasks import keys
    from tasks.connection import get_redis
    from tasks.job import Job

    with app.connection_for_write() as conn:  # sent while no worker listens to catalog
        sent = app.tasks["t-echo.catalog"].apply_async(kwargs={"value": 1}, connection=conn)
    normal = keys.broker_list("catalog", 4)
    assert get_redis().llen(normal) == 1, "not on the normal priority list"
    get_redis().delete(normal)
    del sent

    result = app.tasks["t-echo.default"].apply_async(kwargs={"value": 7})
    assert (
        Job(queue="default", id=result.id).wait_until_finished(30) == 7
    )  # state None: not yet written
    assert get_job("default", result.id).attempts_made == 1

    # Sent the Celery way, a job type's parameters are still checked, at the sender.
    with pytest.raises(InvalidJobData, match="count"):
        app.send_task("t-typed", kwargs={"count": "many"})
