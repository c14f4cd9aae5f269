"""Testing jobs with pytest: Jobyard's plugin (`-p tasks.testing`) and its helpers.

- `run_job(name, data, **options)`: create a job as enqueue() does and run it here, in the
  test's own process and thread, through the worker's code path (claim, runner.execute,
  the outcome recorded by the same scripts); `until_finished=True` runs its retries to the
  end without sleeping through their back-offs. `run_enqueued(job)` runs a job that the
  code under test enqueued. No worker process, no Celery eager mode.
- `jobyard_worker`: a fixture starting real `celery -A <app> worker` processes on the
  test's Redis and database, stopped at teardown. `WorkerProcess` is that process.
- `jobyard_celery_config`: the project's broker, transport and result backend, for
  celery.contrib.pytest's `celery_config`.
- `clear_registry()`: every Jobyard key and broker list gone, for a clean test.

Nothing here is imported by the rest of Jobyard; it imports Django and the platform lazily,
so `-p tasks.testing` can load before pytest-django has set Django up. See docs/testing.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    from tasks.job import Job
    from tasks.registry import JobType
    from tasks.worker.runner import Attempt

#: The ini option naming the module `celery -A` loads in jobyard_worker's workers.
APP_OPTION = "jobyard_celery_app"
DEFAULT_APP = "project"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        APP_OPTION, f"module of the Celery app jobyard_worker starts (default: {DEFAULT_APP})",
        default=DEFAULT_APP,
    )  # fmt: skip


# --- running a job in this process ---------------------------------------------------------


def run_job(
    name: str, data: dict[str, Any] | None = None, *, until_finished: bool = False,
    **options: Any,
) -> Job:  # fmt: skip
    """Create job `name` as enqueue(name, data, **options) would, run it here, return it.

    Data and options are validated first (UnknownJobType, InvalidJobData, InvalidJobOptions
    raise and nothing is written). The job is written at once, even inside the test's
    transaction, and sends no broker message: no worker can take it first. A `delay` is not
    waited for. One attempt runs unless `until_finished`; see run_enqueued.
    """
    from tasks import scripts
    from tasks.enqueue import _prepare  # enqueue's own validation and record
    from tasks.registry import get_job_type

    prepared = _prepare(name, data, options)
    features = [prepared.features] if prepared.features else None
    scripts.enqueue(prepared.job.queue, [prepared.new], publish=False, features=features)
    return _run(get_job_type(name), prepared.job.id, until_finished)


def run_enqueued(job: Job, *, until_finished: bool = False) -> Job:
    """Run `job` (enqueued by the code under test) here, as a worker runs it; the job after.

    One attempt: a job due for a retry is left `delayed` with its back-off, as a worker
    leaves it. With `until_finished`, each retry is made due at once and run, until the job
    completes or fails for good. A job that is not waiting (finished, or taken by a worker)
    is returned as it is; a paused queue parks it (state `paused`).
    """
    from tasks.errors import InvalidJobState, JobyardError
    from tasks.job import get_job
    from tasks.registry import find_job_type

    stored = get_job(job.queue, job.id)
    if stored is None:
        hint = (
            " (enqueued inside a transaction that has not committed?)" if job.state is None else ""
        )
        raise InvalidJobState(f"job {job.id} is not in queue {job.queue!r}{hint}")
    declared = find_job_type(stored.name)
    if declared is None:
        raise JobyardError(
            f"{stored.name!r} is a plain Celery task: run it with a worker (the jobyard_worker"
            " fixture, or celery.contrib.pytest's celery_worker)"
        )
    return _run(declared, job.id, until_finished)


def _run(declared: JobType, job_id: str, until_finished: bool) -> Job:
    from tasks import scripts
    from tasks.job import get_job
    from tasks.worker.claims import claim, worker_name
    from tasks.worker.runner import describe, execute

    queue = declared.queue
    worker = worker_name(f"pytest@{socket.gethostname()}")
    last: Attempt | None = None
    seen: Job | None = None
    while (job := get_job(queue, job_id)) is not None:
        seen = job
        if job.state == "delayed" and (last is None or until_finished):
            _make_due(queue, job_id)
        claimed = claim(queue, job_id, worker)
        if isinstance(claimed, scripts.NotClaimed):
            if claimed.outcome == "limited" and until_finished:  # a rate limit holds: wait
                due = (get_job(queue, job_id) or job).delay_until or 0
                time.sleep(max(0.0, due / 1000 - time.time()))
                continue
            break  # skip (not waiting), paused, limited, exhausted: see the job's state
        last = execute(declared, job_id, worker, claimed)
        if not (until_finished and last.outcome == "retrying"):
            break
    fresh = get_job(queue, job_id)
    if fresh is not None:
        return fresh
    if seen is None or last is None:
        from tasks.errors import InvalidJobState

        raise InvalidJobState(f"job {job_id} no longer exists in queue {queue!r}")
    # Its retention removed it as it finished (remove_on_complete/remove_on_fail).
    seen.state = last.outcome if last.outcome in ("completed", "failed") else None
    seen.attempts_made += 1
    seen.returnvalue = last.value
    seen.failed_reason = None if last.error is None else describe(last.error)
    return seen


def _make_due(queue: str, job_id: str) -> None:
    """Make delayed job `job_id` due now and promote it, as a worker's loop does when due."""
    from tasks import keys, scripts
    from tasks.connection import get_redis

    get_redis().zadd(keys.state(queue, "delayed"), {job_id: 0}, xx=True)
    scripts.promote([queue])


# --- real worker processes -------------------------------------------------------------------


def child_database_url() -> str | None:
    """DATABASE_URL of the database this test process uses (pytest-django's test database,
    once django_db_setup has made it), for processes it starts; None for an in-memory one."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    engine, name = db["ENGINE"], str(db["NAME"])
    if engine.endswith("sqlite3"):
        return None if ":memory:" in name or "mode=memory" in name else f"sqlite:///{name}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}.get(engine.rsplit(".", 1)[-1])
    if scheme is None:
        return None
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    host = quote(db.get("HOST") or "", safe="")  # a socket directory's slashes too
    return f"{scheme}://{auth}{'@' if auth else ''}{host}{port}/{quote(name)}"


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process a test starts: this one's (DJANGO_SETTINGS_MODULE,
    REDIS_URL, ...), DATABASE_URL pointing at the test database, then `extra`."""
    database = child_database_url()
    return {**os.environ, **({"DATABASE_URL": database} if database else {}), **(extra or {})}


class WorkerProcess:
    """`celery -A <app> worker` as a child process in a session of its own, stopped by its pid
    and process group (its pool children included), never by name.

    It inherits the environment (DJANGO_SETTINGS_MODULE, REDIS_URL, ...), with DATABASE_URL
    pointing at the test database so that it sees the rows a test committed.
    """

    def __init__(self, queues: Sequence[str], concurrency: int = 2, pool: str = "prefork",
                 env: dict[str, str] | None = None, output: Path | None = None,
                 loglevel: str | None = "INFO", args: Sequence[str] = (),
                 app: str = DEFAULT_APP, cwd: Path | str | None = None) -> None:  # fmt: skip
        self.name = f"test-{uuid.uuid4().hex[:8]}@127.0.0.1"
        self.queues = list(queues)
        self.concurrency = concurrency
        self.pool = pool
        self.extra_env = env or {}
        self.output = output
        self.loglevel = loglevel
        #: More of `celery worker`'s options: ("-E",) sends task events.
        self.args = tuple(args)
        self.app = app
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> WorkerProcess:
        env = child_environment(self.extra_env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", self.app, "worker", "-n", self.name,
             "-Q", ",".join(self.queues), "-c", str(self.concurrency), "-P", self.pool,
             "--without-gossip", "--without-mingle",
             *(["-l", self.loglevel] if self.loglevel else []), *self.args],
            cwd=self.cwd, env=env, start_new_session=True,
            stdout=self.output.open("ab") if self.output else None,
            stderr=subprocess.STDOUT if self.output else None,
        )  # fmt: skip
        if wait:
            self.wait_ready()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def wait_ready(self, timeout: float = 60) -> None:
        """Return once the worker answers a ping; raise if it exits or stays silent."""
        from celery.app.utils import find_app

        control = find_app(self.app).control
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None, "not started"
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker {self.name} exited during start-up (exit code {self.process.returncode})"
                )
            if control.ping(destination=[self.name], timeout=0.5):
                return
        raise TimeoutError(f"worker {self.name} not ready within {timeout} s")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crashed host would."""
        assert self.process is not None, "not started"
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Send `sig` (a warm shutdown) and wait; SIGKILL the group after `timeout` s."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process:
            # Pool children of a SIGKILLed main process are ours too: end them by group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture
def jobyard_worker(request: pytest.FixtureRequest, django_db_setup: None) -> Iterator[Callable]:
    """Start real workers: `jobyard_worker(["default"], concurrency=1, pool="solo", env=None)`.

    Each is a `celery -A <app> worker` process (app: the `app` argument, else the
    `jobyard_celery_app` ini option, else `project`) run from pytest's rootdir on the
    test's Redis and test database, returned once it answers a ping (`wait=False`: at
    once). `queues` defaults to every queue in JOBYARD_QUEUES. At teardown each is sent
    SIGTERM and, if still running after `stop_timeout` seconds, killed with its group.
    """
    default_app = request.config.getini(APP_OPTION) or DEFAULT_APP
    started: list[tuple[WorkerProcess, float]] = []

    def start(queues: Sequence[str] | None = None, concurrency: int = 1, pool: str = "solo",
              env: dict[str, str] | None = None, *, app: str | None = None, wait: bool = True,
              output: Path | None = None, loglevel: str | None = "INFO",
              args: Sequence[str] = (), stop_timeout: float = 10) -> WorkerProcess:  # fmt: skip
        if queues is None:
            from django.conf import settings

            queues = list(settings.JOBYARD_QUEUES)
        proc = WorkerProcess(queues, concurrency, pool, env, output, loglevel, args,
                             app=app or default_app, cwd=request.config.rootpath)  # fmt: skip
        started.append((proc, stop_timeout))
        return proc.start(wait=wait)

    yield start
    for proc, stop_timeout in started:
        proc.stop(timeout=stop_timeout)


# --- celery.contrib.pytest -------------------------------------------------------------------

#: The project's Celery settings an embedded test worker needs to speak Jobyard: its
#: transport (jobs registered as they are sent), result backend (answering from the
#: registry), queues, routes and serialization.
CELERY_CONFIG_KEYS = (
    "broker_url", "broker_transport", "broker_transport_options", "result_backend",
    "broker_use_ssl", "redis_backend_use_ssl", "result_backend_transport_options",
    "task_serializer", "result_serializer", "accept_content", "task_default_queue",
    "task_default_priority", "task_routes",
)  # fmt: skip


@pytest.fixture(scope="session")
def jobyard_celery_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The project app's broker (TLS and Sentinel options included), transport, result
    backend, default queue and routes, for celery.contrib.pytest:
    `def celery_config(jobyard_celery_config): return {...}`."""
    from celery.app.utils import find_app

    conf = find_app(request.config.getini(APP_OPTION) or DEFAULT_APP).conf
    return {key: conf[key] for key in CELERY_CONFIG_KEYS if conf.get(key) is not None}


# --- a clean registry -------------------------------------------------------------------------


def clear_registry(keep_workers: bool = True) -> int:
    """Delete every Jobyard key (KEY_PREFIX) and every queue's broker list from the Redis
    the settings name (a test Redis!); live workers' heartbeats stay unless `keep_workers`
    is false. How many keys were deleted."""
    from django.conf import settings

    from tasks import keys
    from tasks.connection import get_redis

    client = get_redis()
    kept = (keys.workers().encode(), keys.worker("").encode()) if keep_workers else ()
    doomed = [
        k for k in client.scan_iter(f"{keys.prefix()}*", count=1000) if not k.startswith(kept)
    ]
    for queue in settings.JOBYARD_QUEUES:
        doomed += keys.broker_lists(queue)
    return client.delete(*doomed) if doomed else 0
