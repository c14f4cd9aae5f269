"""Shared fixtures: real Celery worker processes against the Redis and PostgreSQL that
bin/test started (REDIS_URL, DATABASE_URL in the environment)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    if "JOBYARD_TEST_TMP" not in os.environ:
        raise pytest.UsageError(
            "run the tests with bin/test: it starts Redis and PostgreSQL for them"
        )


class WorkerProcess:
    """`celery -A project worker` as a child process, stopped by its pid."""

    def __init__(self, queues: list[str], concurrency: int = 2, pool: str = "prefork",
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.name = f"test-{uuid.uuid4().hex[:8]}@127.0.0.1"
        self.queues = queues
        self.concurrency = concurrency
        self.pool = pool
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> WorkerProcess:
        db = settings.DATABASES["default"]
        env = {
            **os.environ,
            # The test database pytest-django created, so the worker sees committed rows.
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            **self.extra_env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "project", "worker", "-n", self.name,
             "-Q", ",".join(self.queues), "-c", str(self.concurrency), "-P", self.pool,
             "--without-gossip", "--without-mingle", "-l", "INFO"],
            cwd=BASE_DIR, env=env, start_new_session=True,
        )  # fmt: skip
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        from project.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process and self.process.poll() is None, "worker exited during start-up"
            if app.control.ping(destination=[self.name], timeout=0.5):
                return
        raise TimeoutError(f"worker {self.name} not ready within {timeout} s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
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


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker) -> Iterator[WorkerProcess]:
    """One worker on every queue, shared by the tests that only need jobs to run."""
    proc = WorkerProcess(list(settings.JOBYARD_QUEUES)).start()
    yield proc
    proc.stop()
