"""Shared fixtures: real Celery worker processes against the Redis and PostgreSQL that
bin/test started (REDIS_URL, DATABASE_URL in the environment).

A test marked `pure` is logic alone: it gets no Redis (the registry is not cleaned for it),
no database (pytest-django refuses it any query), and fails if it opens a connection or asks
for either. Only pure tests can run without bin/test's servers:
`.venv/bin/python -m pytest -m pure`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.testing import WorkerProcess, child_environment, clear_registry

BASE_DIR = Path(__file__).resolve().parent.parent


def is_pure(item: pytest.Item) -> bool:
    return item.get_closest_marker("pure") is not None


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected what they deselect
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "JOBYARD_TEST_TMP" not in os.environ and not all(is_pure(item) for item in items):
        raise pytest.UsageError(
            "run the tests with bin/test: it starts Redis and PostgreSQL for them"
            " (only the pure tests run without it: -m pure)"
        )


#: pytest-django's database fixtures (db, transactional_db, admin_client, ...) and ours
#: (worker, start_worker, start_beat) all go through django_db_setup.
DATABASE_FIXTURES = {"django_db_setup"}


@pytest.hookimpl(tryfirst=True)  # before any fixture of the test is set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    if is_pure(item):
        asked = sorted(DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())))
        if item.get_closest_marker("django_db") or asked:
            pytest.fail(
                f"{item.nodeid} is marked pure but asks for the database"
                f" ({'the django_db mark' if not asked else ', '.join(asked)})",
                pytrace=False,
            )


class BeatProcess:
    """`celery -A project beat` with Jobyard's scheduler, as a child process."""

    def __init__(self, output: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.output = output
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None

    def start(self) -> BeatProcess:
        env = child_environment(self.extra_env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "project", "beat", "-S",
             "tasks.scheduling.beat:JobyardScheduler", "--pidfile=", "-l", "INFO"],
            cwd=BASE_DIR, env=env, start_new_session=True,
            stdout=self.output.open("ab") if self.output else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def start_beat(django_db_setup) -> Iterator:
    started: list[BeatProcess] = []

    def start(output: Path | None = None, env: dict[str, str] | None = None) -> BeatProcess:
        beat = BeatProcess(output, env).start()
        started.append(beat)
        return beat

    yield start
    for beat in started:
        beat.kill()


#: The shared worker's queues; the other queues are left to tests that need workers of
#: their own (rate limits, pauses, crashes, priorities).
SHARED_QUEUES = ["default", "email", "reports"]


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker) -> Iterator[WorkerProcess]:
    """One worker on the shared queues, for the tests that only need jobs to run."""
    proc = WorkerProcess(SHARED_QUEUES, cwd=BASE_DIR).start()
    yield proc
    proc.stop()


@pytest.fixture
def start_worker(django_db_setup) -> Iterator:
    """Start workers of the test's own: `start_worker(["cleanup"], env={...})`."""
    started: list[WorkerProcess] = []

    def start(queues: list[str], concurrency: int = 2, pool: str = "prefork",
              env: dict[str, str] | None = None, wait: bool = True,
              output: Path | None = None, loglevel: str | None = "INFO",
              args: tuple[str, ...] = ()) -> WorkerProcess:  # fmt: skip
        proc = WorkerProcess(queues, concurrency, pool, env, output, loglevel, args, cwd=BASE_DIR)
        started.append(proc)
        return proc.start(wait=wait)

    yield start
    for proc in started:  # what a test left running is of no interest: end it at once
        if proc.process and proc.process.poll() is None:
            proc.kill()


class PureTestReachedOut(AssertionError):
    """A test marked pure reached for Redis, PostgreSQL or any other server."""


@pytest.fixture(autouse=True)
def no_connections_when_pure(request: pytest.FixtureRequest, monkeypatch) -> Iterator[list]:
    """A pure test that connects anywhere fails, even if the code under test swallowed the
    error; subprocesses it starts are theirs to judge. Yields what it reached for."""
    if not is_pure(request.node):
        yield []
        return
    from django.db.backends.base.base import BaseDatabaseWrapper
    from redis.connection import AbstractConnection

    attempts: list[object] = []

    def refuse(sock: socket.socket, address: object) -> None:
        attempts.append(address)
        raise PureTestReachedOut(f"a pure test connected to {address!r}")

    # A connection an earlier test left in a pool opens no socket: refuse its commands.
    def refuse_redis(connection: AbstractConnection, *args: object, **kwargs: object) -> None:
        attempts.append(repr(connection))
        raise PureTestReachedOut(f"a pure test sent a command to {connection!r}")

    # pytest-django's blocker refuses the query ("Database access not allowed"); this
    # records it too, so that a refusal the code under test catches still fails the test.
    blocked = BaseDatabaseWrapper.ensure_connection

    def refuse_database(wrapper: BaseDatabaseWrapper) -> None:
        attempts.append(f"database {wrapper.alias!r}")
        blocked(wrapper)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(AbstractConnection, "send_packed_command", refuse_redis)
    monkeypatch.setattr(BaseDatabaseWrapper, "ensure_connection", refuse_database)
    yield attempts
    if attempts:
        pytest.fail(f"marked pure, but reached for {attempts}", pytrace=False)


@pytest.fixture(autouse=True)
def clean_registry(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with an empty registry and empty broker queues (a pure test has
    no Redis)."""
    if is_pure(request.node):
        yield
        return
    # Live workers' heartbeats stay: wiping them would hide the shared worker for a beat.
    clear_registry(keep_workers=True)
    yield


def drain_archive() -> int:
    """Run the recorder until every event stream is read, as `record_jobs` would; how many
    events that was."""
    from tasks.recorder import record_events

    total = 0
    while done := record_events(batch_size=200):
        total += done
    return total


def wait_for(condition, timeout: float = 30, interval: float = 0.05, message: str = ""):
    """Poll `condition` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message or condition}")


def runs(key: str) -> int:
    from tasks.connection import get_redis

    return int(get_redis().get(f"{key}:runs") or 0)


def order(key: str) -> list[str]:
    from tasks.connection import get_redis

    return [i.decode() for i in get_redis().lrange(f"{key}:order", 0, -1)]
