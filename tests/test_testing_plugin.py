"""Jobyard's pytest plugin (tasks/testing.py, docs/testing.md): jobs run in the test's own
process through the worker's code path; real worker processes from a fixture; and
celery.contrib.pytest's fixtures working against Jobyard's transport and result backend."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tasks import (
    InvalidJobData,
    InvalidJobOptions,
    JobyardError,
    Queue,
    UnknownJobType,
    enqueue,
    find_job,
    get_job,
    get_workers,
)
from tasks import keys as registry_keys
from tasks.connection import get_redis
from tasks.events import read_events
from tasks.testing import WorkerProcess, run_enqueued, run_job
from tests.conftest import BASE_DIR, runs, wait_for

pytest_plugins = ["celery.contrib.pytest"]

#: No worker of the suite consumes it, save the ones a test starts: jobs here run where the
#: test says.
QUEUE = "cleanup"
#: Waits long enough (6 s with the tests' back-off scale of 0.01) to tell a skipped back-off.
SLOW_BACKOFF = {"type": "fixed", "delay": 600_000}


def _key() -> str:
    return f"plugin-{uuid.uuid4().hex[:8]}"


def _events(queue: str, job_id: str) -> list[tuple[str, dict[str, str]]]:
    return [(e.event, e.fields) for e in read_events({queue: "0-0"}) if e.job_id == job_id]


def _here() -> str:
    return f":{os.getpid()}"


# --- run_job: one job, in this process -------------------------------------------------------


def test_run_job_completes_the_job_here_and_stores_its_value() -> None:
    job = run_job(f"t-echo.{QUEUE}", {"value": {"answer": 42}})

    assert job.state == "completed"
    assert job.returnvalue == {"answer": 42}
    assert job.attempts_made == 1
    assert job.worker.startswith("pytest@") and job.worker.endswith(_here())  # this process
    stored = get_job(QUEUE, job.id)
    assert stored.state == "completed" and stored.returnvalue == {"answer": 42}
    assert [j.id for j in Queue(QUEUE).get_jobs(["completed"])] == [job.id]
    assert [name for name, _ in _events(QUEUE, job.id)] == ["waiting", "active", "completed"]
    # Nothing was sent to the broker: no worker could have taken it first.
    assert not any(get_redis().llen(k) for k in registry_keys.broker_lists(QUEUE))


def test_a_failing_job_is_retrying_with_its_back_off_then_failed_after_its_attempts() -> None:
    key = _key()
    job = run_job(f"t-flaky.{QUEUE}", {"key": key, "fail_times": 10},
                  attempts=3, backoff=SLOW_BACKOFF)  # fmt: skip

    # One attempt, as a worker runs it: the policy decided a retry, due after its back-off.
    assert job.state == "delayed"
    assert job.attempts_made == 1 and job.failed_reason == "RuntimeError: failure 1"
    assert job.delay_until > time.time() * 1000 + 4000
    assert [name for name, _ in _events(QUEUE, job.id)][-1] == "retrying"
    assert runs(key) == 1

    started = time.monotonic()
    job = run_enqueued(job, until_finished=True)

    assert time.monotonic() - started < 4  # two 6 s back-offs skipped, not slept through
    assert job.state == "failed"
    assert job.attempts_made == 3 and runs(key) == 3
    assert job.failed_reason == "RuntimeError: failure 3"
    assert len(job.stacktrace) == 3 and "RuntimeError: failure 3" in job.stacktrace[-1]
    assert job.id in [j.id for j in Queue(QUEUE).get_failed()]


def test_until_finished_runs_retries_to_success_and_stops_at_a_permanent_error() -> None:
    key = _key()
    job = run_job(f"t-flaky.{QUEUE}", {"key": key, "fail_times": 2}, attempts=5,
                  backoff=SLOW_BACKOFF, until_finished=True)  # fmt: skip
    assert (job.state, job.returnvalue, job.attempts_made) == ("completed", 3, 3)

    job = run_job(f"t-permanent.{QUEUE}", attempts=5, until_finished=True)
    assert (job.state, job.attempts_made) == ("failed", 1)
    assert job.failed_reason == "PermanentError: this input can never work"


def test_progress_updates_are_recorded_and_visible_on_the_returned_job() -> None:
    job = run_job(f"t-progress.{QUEUE}", {"steps": 4})

    assert job.state == "completed" and job.returnvalue == "done"
    assert job.progress == {"stage": "done", "steps": 4}
    reported = [f["progress"] for name, f in _events(QUEUE, job.id) if name == "progress"]
    assert reported == ["25", "50", "75", "100", '{"stage":"done","steps":4}']


def test_bad_input_raises_before_anything_is_written() -> None:
    with pytest.raises(InvalidJobData) as bad_data:
        run_job("t-typed", {"count": "12"})
    assert "count" in str(bad_data.value)
    with pytest.raises(InvalidJobOptions):
        run_job("t-typed", {"count": 1}, priority=0)
    with pytest.raises(UnknownJobType):
        run_job("no-such-type")

    heartbeats = (registry_keys.workers().encode(), registry_keys.worker("").encode())
    written = get_redis().scan_iter(f"{registry_keys.prefix()}*")
    assert [k for k in written if not k.startswith(heartbeats)] == []  # no job, no event


def test_run_job_is_idempotent_by_job_id_and_skips_a_delay() -> None:
    key = _key()
    first = run_job(f"t-record.{QUEUE}", {"key": key}, job_id=f"{key}-once", delay=3_600_000)
    again = run_job(f"t-record.{QUEUE}", {"key": key}, job_id=f"{key}-once")

    assert first.state == "completed" and first.returnvalue == 1  # the delay was not waited
    assert again.id == first.id and again.state == "completed" and runs(key) == 1


def test_run_enqueued_runs_what_the_code_under_test_enqueued() -> None:
    key = _key()
    job = enqueue(f"t-record.{QUEUE}", {"key": key})  # as a view would: its message is sent
    assert job.state == "waiting"

    done = run_enqueued(job)
    assert done.state == "completed" and done.returnvalue == 1
    assert done.worker.endswith(_here())
    # A copy of its message that a worker takes later finds it done and does not run it.
    assert run_enqueued(done).state == "completed" and runs(key) == 1


def test_a_paused_queue_parks_the_job_until_it_resumes() -> None:
    queue = Queue(QUEUE)
    queue.pause()
    job = run_job(f"t-echo.{QUEUE}", {"value": 1})
    assert job.state == "paused" and job.attempts_made == 0
    queue.resume()
    assert run_enqueued(job).state == "completed"


def test_a_job_removed_as_it_completes_comes_back_with_its_value() -> None:
    job = run_job(f"t-echo.{QUEUE}", {"value": "gone"}, remove_on_complete=True)
    assert (job.state, job.returnvalue, job.attempts_made) == ("completed", "gone", 1)
    assert get_job(QUEUE, job.id) is None


def test_a_rate_limit_holds(monkeypatch) -> None:
    monkeypatch.setitem(settings.JOBYARD_QUEUES[QUEUE], "rate_limit", (1, 1000))
    assert run_job(f"t-echo.{QUEUE}", {"value": 1}).state == "completed"
    held = run_job(f"t-echo.{QUEUE}", {"value": 2})
    assert held.state == "delayed" and held.attempts_made == 0  # over the limit: it waits

    started = time.monotonic()
    assert run_enqueued(held, until_finished=True).returnvalue == 2  # once a slot is free
    assert 0.3 < time.monotonic() - started < 5


def test_a_plain_celery_task_is_not_run_in_process() -> None:
    from tests.jobapp.tasks import add

    sent = add.apply_async((1, 2), queue=QUEUE)  # a registry job too (the transport's send)
    with pytest.raises(JobyardError, match="plain Celery task"):
        run_enqueued(get_job(QUEUE, sent.id))


# --- jobyard_worker: real worker processes ---------------------------------------------------


@pytest.fixture
def stopped_after() -> list[WorkerProcess]:
    """The workers a test hands it are checked to be stopped once jobyard_worker tore down
    (this fixture is set up first, so it is torn down last)."""
    workers: list[WorkerProcess] = []
    yield workers
    for proc in workers:
        assert proc.process is not None and proc.process.poll() is not None, "still running"
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)  # nor any process of its group


@pytest.mark.django_db(transaction=True)
def test_the_worker_fixture_runs_jobs_on_a_real_worker(stopped_after, jobyard_worker) -> None:
    proc = jobyard_worker([QUEUE])
    stopped_after.append(proc)
    assert (proc.app, proc.pool, proc.concurrency) == ("project", "solo", 1)

    job = enqueue(f"t-echo.{QUEUE}", {"value": 7})
    assert job.wait_until_finished(timeout=30) == 7
    ran = job.refresh().worker
    assert ran.startswith(proc.name) and not ran.endswith(_here())  # in the worker's process


# --- celery.contrib.pytest, with Jobyard's transport and result backend ----------------------

#: celery_worker consumes the test app's default queue: a Jobyard queue no other worker takes.
CELERY_QUEUE = "webhooks"


@pytest.fixture(scope="session")
def celery_config(jobyard_celery_config):
    return {**jobyard_celery_config, "task_default_queue": CELERY_QUEUE}


@pytest.fixture(scope="session")
def celery_worker_parameters():
    return {"queues": [CELERY_QUEUE, "celery"]}


def test_jobyard_celery_config_is_the_projects(jobyard_celery_config) -> None:
    # No broker_transport: the URL's scheme names Jobyard's transport (project/broker.py).
    assert "broker_transport" not in jobyard_celery_config
    assert jobyard_celery_config["result_backend"] == settings.CELERY_RESULT_BACKEND
    assert jobyard_celery_config["broker_url"] == settings.CELERY_BROKER_URL


def test_celery_worker_runs_a_plain_task_and_returns_its_result(celery_app, celery_worker) -> None:
    @celery_app.task
    def multiply(x: int, y: int) -> int:
        return x * y

    celery_worker.reload()
    result = multiply.delay(6, 7)
    assert result.get(timeout=10) == 42
    # Sent through Jobyard's transport: a registry job too, completed with the task's value.
    job = get_job(CELERY_QUEUE, result.id)
    assert (job.state, job.returnvalue) == ("completed", 42)


def test_celery_worker_runs_a_task_on_a_queue_jobyard_does_not_know(
    celery_app, celery_worker
) -> None:
    """Celery's own `celery` queue: the transport sends and delivers it as kombu does."""

    @celery_app.task
    def shout(word: str) -> str:
        return word.upper()

    celery_worker.reload()
    result = shout.apply_async(("hi",), queue="celery")
    assert result.get(timeout=10) == "HI"
    assert find_job(result.id) is None  # not a registry job


def test_celery_worker_runs_retries_and_countdowns(celery_app, celery_worker) -> None:
    """Kept as durable delays in the registry, they need a worker's maintenance loop to come
    due: the embedded worker runs one too."""

    @celery_app.task(bind=True, max_retries=3)
    def flaky(self) -> int:
        if self.request.retries < 2:
            raise self.retry(countdown=0.1)
        return self.request.retries

    celery_worker.reload()
    # Its loop runs, whatever other workers of the suite do: it heartbeats.
    wait_for(lambda: celery_worker.hostname in [w["name"] for w in get_workers()], timeout=5)
    assert flaky.delay().get(timeout=10) == 2
    assert flaky.apply_async(countdown=0.2).get(timeout=10) == 2


def test_celery_worker_runs_a_job_type_too(celery_app, celery_worker) -> None:
    result = celery_app.tasks[f"t-echo.{CELERY_QUEUE}"].delay(value="via celery")
    assert result.get(timeout=10) == "via celery"
    assert get_job(CELERY_QUEUE, result.id).state == "completed"


# --- docs/testing.md, run as a user's test module ---------------------------------------------


@pytest.mark.slow
def test_the_docs_examples_pass_in_a_session_of_their_own(tmp_path) -> None:
    """The examples of docs/testing.md, one test module run by a pytest of its own that
    enables the plugin the documented way (-p, before Django is set up), on a Redis database
    and a test database of its own, so that no worker of this session takes its jobs."""
    doc = (BASE_DIR / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) >= 8
    (tmp_path / "test_docs_testing.py").write_text("\n\n".join(blocks))
    redis = urlsplit(settings.REDIS_URL)._replace(path="/1").geturl()
    database = urlsplit(os.environ["DATABASE_URL"])._replace(path="/jobyard_docs").geturl()
    env = {**os.environ, "PYTHONPATH": str(BASE_DIR), "REDIS_URL": redis, "DATABASE_URL": database}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tasks.testing", "-p", "no:cacheprovider",
         "--ds", "tests.settings", "-o", "jobyard_celery_app=project.celery",
         "--rootdir", str(tmp_path), "-q", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert f"{len(re.findall(r'^def test_', doc, re.M))} passed" in result.stdout
