"""A job sent from Django is run by a real worker process and its result observed."""

import time

import pytest

from tasks import enqueue


@pytest.mark.django_db(transaction=True)
def test_it_runs_ping_on_a_real_worker(worker):
    sent = time.time()
    result = enqueue("ping", {"sent_at": sent})
    pong = result.get(timeout=30)
    assert pong["pong"] is True
    assert pong["jobId"] == result.id
    assert pong["sentAt"] == sent
    assert pong["startedAt"] >= sent
    assert pong["queueMs"] >= 0


@pytest.mark.django_db(transaction=True)
def test_it_sends_nothing_until_the_transaction_commits(worker):
    from django.db import transaction

    from project.celery import app

    with transaction.atomic():
        result = enqueue("ping", {})
        time.sleep(1.0)
        # Not sent yet: a worker cannot have seen it.
        assert app.AsyncResult(result.id).state == "PENDING"
    assert result.get(timeout=30)["jobId"] == result.id


@pytest.mark.django_db(transaction=True)
def test_it_sends_nothing_when_the_transaction_rolls_back(worker):
    from django.db import transaction

    from project.celery import app

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        result = enqueue("ping", {})
        raise Abort
    time.sleep(2.0)
    assert app.AsyncResult(result.id).state == "PENDING"
