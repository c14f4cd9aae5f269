"""pytest plugin that bench/celery_suite.py loads (`-p bench.celery_suite_plugin`) into
Celery's own integration suite, in both runs.

In every run it only records: what the suite's worker really used (the transport class of
its consumer's connection, the result backend class of its app) and one JSON line per test
report, written as the run goes, so a run stopped by the time budget still has its
outcomes. Both go to files named by the harness in the environment.

In the Jobyard run (CELERY_SUITE_DJANGO=1) it also sets Django up before the suite's first
connection, since Jobyard's transport reads the project's settings (its key prefix, its
Redis, the worker signals tasks/apps.py installs). Loading project.settings configures the
project's logging (root logger at LOG_LEVEL, a structlog handler) and connects a
setup_logging receiver that stops Celery configuring the worker's logging. Neither belongs
to the transport or the backend, and the suite's caplog tests see both, so by default the
logging is put back as it was and the receiver disconnected (CELERY_SUITE_KEEP_LOGGING=1
keeps them).

CELERY_SUITE_BACKEND=module:Class makes that class the backend of `redis://` result URLs:
the suite keeps TEST_BACKEND=redis://..., so its tests that skip unless
`result_backend.startswith("redis")` run in both configurations.
"""

from __future__ import annotations

import json
import logging
import os
import time
import weakref
from typing import Any

#: Set by the harness: where the worker's transport/backend and each test report go.
USED_FILE = "CELERY_SUITE_USED"
REPORTS_FILE = "CELERY_SUITE_REPORTS"


def _qualname(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    keep_logging = os.environ.get("CELERY_SUITE_KEEP_LOGGING") == "1"
    root = logging.getLogger()
    saved = {
        name: (logger.level, list(logger.handlers), logger.propagate)
        for name, logger in (
            ("", root),
            *((n, logging.getLogger(n)) for n in ("celery", "django", "django.db.backends")),
        )
    }
    import django

    django.setup()
    if keep_logging:
        return
    for name, (level, handlers, propagate) in saved.items():
        logger = logging.getLogger(name) if name else root
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate
    from celery import signals

    # project/celery.py's receiver: with any receiver connected, Celery skips its own setup.
    for receiver in _receivers(signals.setup_logging):
        if getattr(receiver, "__module__", "").split(".")[0] in ("project", "tasks"):
            signals.setup_logging.disconnect(receiver)


def _receivers(signal: Any) -> list[Any]:
    live = []
    for _, receiver in list(signal.receivers):
        if isinstance(receiver, weakref.ReferenceType):
            receiver = receiver()
        if receiver is not None:
            live.append(receiver)
    return live


def _alias_backend(path: str) -> None:
    from celery.app import backends

    backends.BACKEND_ALIASES["redis"] = path
    backends.BACKEND_ALIASES["rediss"] = path


def _record_worker(sender: Any = None, consumer: Any = None, **kwargs: Any) -> None:
    """test_worker_started (celery.contrib.testing's worker sends no worker_ready): the
    classes the suite's worker actually consumes and stores results with."""
    path = os.environ.get(USED_FILE)
    if not path or consumer is None:
        return
    used: dict[str, Any] = {"pid": os.getpid()}
    try:
        used["transport"] = _qualname(type(consumer.connection.transport))
    except Exception as exc:  # noqa: BLE001  (record, never break the suite's worker)
        used["transport"] = f"unknown: {exc!r}"
    try:
        used["backend"] = _qualname(type(consumer.app.backend))
    except Exception as exc:  # noqa: BLE001
        used["backend"] = f"unknown: {exc!r}"
    used["broker_url"] = consumer.app.conf.broker_url
    used["broker_transport"] = consumer.app.conf.broker_transport
    used["result_backend"] = consumer.app.conf.result_backend
    used["django"] = bool(os.environ.get("DJANGO_SETTINGS_MODULE"))
    with open(path, "w") as out:
        json.dump(used, out)


def pytest_configure(config: Any) -> None:
    if os.environ.get("CELERY_SUITE_DJANGO") == "1":
        _setup_django()
    if backend := os.environ.get("CELERY_SUITE_BACKEND"):
        _alias_backend(backend)
    from celery.contrib.testing.worker import test_worker_started

    test_worker_started.connect(_record_worker, weak=False)


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """CELERY_SUITE_IGNORE_TIMEOUT_MARKS=1: the suite's own @pytest.mark.timeout marks go,
    so the command line's --timeout bounds every test (to measure how long a test that its
    own mark cuts short really takes)."""
    if os.environ.get("CELERY_SUITE_IGNORE_TIMEOUT_MARKS") != "1":
        return
    for item in items:
        item.own_markers[:] = [m for m in item.own_markers if m.name != "timeout"]


def _first_line(report: Any) -> str:
    longrepr = getattr(report, "longrepr", None)
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (file, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.splitlines()[0] if crash.message else ""
    text = str(longrepr).strip().splitlines()
    return text[-1] if text else ""


def pytest_runtest_logreport(report: Any) -> None:
    path = os.environ.get(REPORTS_FILE)
    if not path:
        return
    line = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "xfail": hasattr(report, "wasxfail"),
        "duration": round(report.duration, 3),
        "message": _first_line(report),
        "subtest": type(report).__name__ != "TestReport",
        "at": time.time(),
    }
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\n")
