"""Fixtures of the catalog tests: a fake COBS, a worker pointed at it, the API clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.testing import WorkerProcess
from tests.api.conftest import anonymous, api, make_token, reader, start_gunicorn  # noqa: F401
from tests.catalog.fake_cobs import FakeCobs

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fake_cobs_server() -> Iterator[FakeCobs]:
    server = FakeCobs().start()
    yield server
    server.stop()


@pytest.fixture
def fake_cobs(fake_cobs_server: FakeCobs, settings) -> FakeCobs:
    """The fake COBS, reset to its three pages, and settings.COBS_API_URL pointing at it."""
    fake_cobs_server.reset()
    settings.COBS_API_URL = fake_cobs_server.url
    return fake_cobs_server


@pytest.fixture(scope="module")
def catalog_worker(django_db_setup, fake_cobs_server: FakeCobs) -> Iterator[WorkerProcess]:
    """A real worker on the catalog, cleanup and default queues, its COBS the fake one
    (the session's shared worker does not consume catalog)."""
    proc = WorkerProcess(["catalog", "cleanup", "default"], concurrency=1,
                         env={"COBS_API_URL": fake_cobs_server.url}, cwd=BASE_DIR)  # fmt: skip
    proc.start()
    yield proc
    proc.stop()
