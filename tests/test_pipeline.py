"""A job sent from Django is run by a real worker process and its result observed."""

import time

import pytest
from django.db import transaction

from tasks import enqueue, get_job


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
