"""Celery's promises, kept with Jobyard installed: plain `@shared_task`s in an app's tasks.py,
`.delay()`, countdown and ETA, `self.retry`, expires, results, canvas, signals; and job
types used as Celery tasks. Real workers, real Redis, no eager mode."""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from celery import chain, chord, group
from celery.exceptions import TimeoutError as CeleryTimeout
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from kombu import Connection

from project.celery import app
from tasks import InvalidJobData, JobFailed, PermanentError, get_job
from tasks.connection import get_redis
from tests.conftest import drain_archive, runs, wait_for
from tests.jobapp import tasks as plain
from tests.jobapp.jobs import fail as failing_type
from tests.jobapp.jobs import typed


def _key() -> str:
    return f"celery-{uuid.uuid4().hex[:8]}"


@pytest.mark.django_db(transaction=True)
def test_a_plain_task_runs_and_is_a_registry_job(worker) -> None:
    key = _key()
    result = plain.add.delay(2, 3, key=key)
    assert result.get(timeout=30) == 5
    assert result.state == "SUCCESS"
    job = get_job("default", result.id)
    assert job is not None and job.state == "completed"
    assert job.name == "tests.jobapp.tasks.add"
    assert job.returnvalue == 5
    assert job.data == {"args": [2, 3], "kwargs": {"key": key}}
    assert job.attempts_made == 1 and job.worker
    assert runs(key) == 1

    from tasks.models import JobRecord

    drain_archive()
    record = JobRecord.objects.get(job_id=result.id)
    assert record.state == "completed" and record.returnvalue == 5

    # The API, the CLI and the admin show it as they show any job.
    staff = Client()
    staff.force_login(User.objects.create_superuser("celery-staff", "s@example.com", "pw"))
    shown = staff.get(f"/api/v1/jobs/default/{result.id}").json()
    assert shown["state"] == "completed" and shown["returnvalue"] == 5
    status = staff.get(f"/api/admin/jobs/status?jobId={result.id}").json()
    assert result.id in json.dumps(status) and "completed" in json.dumps(status)
    out = io.StringIO()
    call_command("jobs", "status", result.id, "--json", stdout=out)
    assert json.loads(out.getvalue())["state"] == "completed"
    page = staff.get(f"/admin/tasks/jobrecord/{record.pk}/change/").content.decode()
    assert "tests.jobapp.tasks.add" in page


@pytest.mark.django_db(transaction=True)
def test_a_failing_plain_task_is_a_failed_task_and_a_failed_job(worker) -> None:
    result = plain.boom.delay("it broke")
    with pytest.raises(ValueError, match="it broke"):
        result.get(timeout=30)
    assert result.state == "FAILURE"
    job = wait_for(lambda: (j := get_job("default", result.id)) and j.state == "failed" and j)
    assert job.failed_reason == "ValueError: it broke"
    assert "ValueError" in job.stacktrace[-1]


@pytest.mark.django_db(transaction=True)
def test_self_retry_is_a_durable_delay_recorded_per_attempt(worker) -> None:
    key = _key()
    result = plain.retry_until.delay(3, key, countdown=0.3)
    # Between attempts the job waits in the registry, not in a worker's memory.
    delayed = wait_for(
        lambda: (j := get_job("default", result.id)) and j.state == "delayed" and j, timeout=20
    )
    assert delayed.failed_reason == "RuntimeError: run 1 failed"
    assert result.get(timeout=30) == 3
    job = get_job("default", result.id)
    assert job.state == "completed" and job.attempts_made == 3
    assert runs(key) == 3


@pytest.mark.django_db(transaction=True)
def test_countdown_waits_in_the_registry_and_runs_once(worker) -> None:
    key = _key()
    result = plain.add.apply_async((1, 1), {"key": key}, countdown=1.5)
    job = get_job("default", result.id)
    assert job.state == "delayed" and job.delay_until
    assert result.get(timeout=30) == 2
    assert runs(key) == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_eta_beyond_the_visibility_timeout_runs_once(start_worker) -> None:
    """Stock Celery on Redis runs such a task again each time the visibility timeout passes
    while a worker holds it in memory; here it waits in the registry instead."""
    start_worker(["cleanup"], env={"CELERY_BROKER_VISIBILITY_TIMEOUT": "1"})
    key = _key()
    eta = datetime.now(UTC) + timedelta(seconds=4)
    result = plain.add.apply_async((1, 2), {"key": key}, eta=eta, queue="cleanup")
    assert result.get(timeout=30) == 3
    time.sleep(3)  # time for a redelivery, were there one
    assert runs(key) == 1


@pytest.mark.django_db(transaction=True)
def test_an_expired_task_ends_failed_saying_so(worker) -> None:
    key = _key()
    result = plain.add.apply_async((1, 1), {"key": key}, countdown=1, expires=0.5)
    job = wait_for(
        lambda: (j := get_job("default", result.id)) and j.state == "failed" and j, timeout=20
    )
    assert job.failed_reason == "expired"
    assert result.state == "REVOKED"
    assert runs(key) == 0


@pytest.mark.django_db(transaction=True)
def test_a_chain_stops_at_a_failure_and_calls_link_error(worker) -> None:
    key = _key()
    flow = chain(plain.note.si(key, 1), plain.boom.si("link 2", key), plain.note.si(key, 3))
    result = flow.apply_async(link_error=plain.on_error.s(key=key))
    with pytest.raises(ValueError, match="link 2"):
        result.get(timeout=30)  # the last link never runs: it raises its parent's failure
    errors = wait_for(lambda: [i.decode() for i in get_redis().lrange(f"{key}:errors", 0, -1)])
    failed = result.parent  # the boom link
    assert failed.id in errors
    assert runs(key) == 2  # note 1 and boom ran; note 3 did not
    assert get_job("default", result.id) is None  # never sent
    assert get_job("default", failed.id).state == "failed"


@pytest.mark.django_db(transaction=True)
def test_group_and_chord_results(worker) -> None:
    key = _key()
    parts = group(plain.add.s(i, i) for i in range(10)).apply_async()
    assert parts.get(timeout=30) == [2 * i for i in range(10)]
    joined = chord(plain.note.si(key, i) for i in range(20))(plain.total.s())
    assert joined.get(timeout=60) == sum(range(20))
    assert runs(key) == 20
    assert plain.add.starmap([(1, 2), (3, 4)]).delay().get(timeout=30) == [3, 7]
    chunked = plain.add.chunks([(i, i) for i in range(6)], 3).group().apply_async()
    assert chunked.get(timeout=30) == [[0, 2, 4], [6, 8, 10]]
    linked = plain.add.apply_async((1, 1), link=plain.add.s(10, key=key))
    assert linked.get(timeout=30) == 2
    wait_for(lambda: runs(key) == 21, message="the link ran")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_chord_of_a_thousand(worker) -> None:
    key = _key()
    joined = chord(plain.note.si(key, i) for i in range(1000))(plain.total.s())
    assert joined.get(timeout=300) == sum(range(1000))
    assert runs(key) == 1000
    body = get_job("default", joined.id)
    assert body is not None and body.state == "completed" and body.returnvalue == 499500


@pytest.mark.django_db(transaction=True)
def test_a_job_type_is_a_celery_task(worker) -> None:
    assert typed(None, count=1) == {"count": 1, "label": "x", "ratio": 0.5}  # still a function
    result = typed.delay(count=3, label="y")
    assert result.get(timeout=30) == {"count": 3, "label": "y", "ratio": 0.5}
    assert result.state == "SUCCESS"
    assert result.job.state == "completed" and result.job.returnvalue["label"] == "y"
    later = typed.apply_async(kwargs={"count": 4}, countdown=1, priority=1)
    assert later.job.state == "delayed"
    assert later.get(timeout=30)["count"] == 4


@pytest.mark.django_db(transaction=True)
def test_a_failing_job_type_fails_in_celery_too(worker) -> None:
    result = failing_type.delay(message="no good")
    with pytest.raises(PermanentError, match="no good"):
        result.get(timeout=30)
    assert result.state == "FAILURE"
    assert result.job.state == "failed" and result.job.failed_reason == "PermanentError: no good"


@pytest.mark.django_db(transaction=True)
def test_a_job_enqueued_the_registry_way_answers_through_async_result(worker) -> None:
    from tasks import enqueue

    job = enqueue("t-typed", {"count": 7})
    result = app.AsyncResult(job.id)
    assert result.get(timeout=30) == {"count": 7, "label": "x", "ratio": 0.5}
    assert result.state == "SUCCESS"
    failed = enqueue("t-fail", {"message": "nope"})
    with pytest.raises(Exception, match="nope"):
        app.AsyncResult(failed.id).get(timeout=30)
    assert app.AsyncResult("no-such-job").state == "PENDING"


@pytest.mark.pure
def test_bad_arguments_raise_at_the_caller_and_send_nothing() -> None:
    with pytest.raises(InvalidJobData, match="count"):
        typed.delay(count="three")
    with pytest.raises(InvalidJobData, match="by name"):
        typed.delay(3)
    with pytest.raises(InvalidJobData, match="unknown"):
        typed.apply_async(kwargs={"count": 1, "unknown": 2})


@pytest.mark.django_db(transaction=True)
def test_send_task_with_bad_arguments_raises_at_the_caller(worker) -> None:
    with pytest.raises(InvalidJobData, match="count"):
        app.send_task("t-typed", kwargs={"count": "x"})
    with pytest.raises(CeleryTimeout):
        app.AsyncResult("never").get(timeout=0.5)


@pytest.mark.django_db(transaction=True)
def test_a_crafted_bad_message_ends_as_a_failed_job_naming_the_cause(worker) -> None:
    """A message written to Redis by another tool (a stock kombu producer): no job exists
    for it, and its arguments are positional: it fails, saying why, instead of vanishing."""
    options = app.conf.broker_transport_options
    # By path: in this process redis:// names Jobyard's transport (project/broker.py).
    stock = "kombu.transport.redis:Transport"
    with Connection(app.conf.broker_url, transport=stock, transport_options=options) as conn:
        result = app.send_task("t-typed", args=[1], producer=conn.Producer(), queue="default")
    job = wait_for(
        lambda: (j := get_job("default", result.id)) and j.state == "failed" and j, timeout=20
    )
    assert "pass parameters by name" in job.failed_reason
    assert job.name == "t-typed"
    # Celery's stored failure (InvalidJobData), or the registry's word a moment before it.
    with pytest.raises((InvalidJobData, JobFailed), match="pass parameters by name"):
        result.get(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_celery_signals_count_what_the_registry_counts(start_worker) -> None:
    """task_failure and task_retry fire once per failed attempt, as the registry counts."""
    start_worker(["notifications"])
    client = get_redis()
    client.delete("signals:failure", "signals:retry")
    key = _key()
    failing = [plain.boom.apply_async(("x",), queue="notifications") for _ in range(3)]
    retrying = [
        plain.retry_until.apply_async((2, f"{key}-{i}"), {"countdown": 0.1}, queue="notifications")
        for i in range(2)
    ]
    flaky = [app.send_task("t-flaky.notifications", kwargs={"key": f"{key}-f", "fail_times": 1})]
    for result in failing:
        with pytest.raises(ValueError):
            result.get(timeout=30)
    for result in [*retrying, *flaky]:
        result.get(timeout=30)
    jobs = [get_job("notifications", r.id) for r in [*failing, *retrying, *flaky]]
    final_failures = sum(j.state == "failed" for j in jobs)
    retries = sum(j.attempts_made - 1 for j in jobs if j.state == "completed")
    failures = {i.decode() for i in client.lrange("signals:failure", 0, -1)}
    retried = [i.decode() for i in client.lrange("signals:retry", 0, -1)]
    assert final_failures == 3 and len(failures) == 3
    assert failures == {r.id for r in failing}
    assert len(retried) == retries == 3


@pytest.mark.django_db(transaction=True)
def test_a_job_gone_from_the_registry_answers_from_the_archive(worker) -> None:
    """Retention removed the job (and Celery stored no result for it): the archive's final
    state, not PENDING and not an AttributeError."""
    from tasks import enqueue

    job = enqueue("t-typed", {"count": 2})
    assert job.wait_until_finished(30)["count"] == 2
    drain_archive()
    get_job("default", job.id).remove()
    drain_archive()
    assert get_job("default", job.id) is None
    result = app.AsyncResult(job.id)
    assert result.state == "SUCCESS"
    assert result.get(timeout=5) == {"count": 2, "label": "x", "ratio": 0.5}
