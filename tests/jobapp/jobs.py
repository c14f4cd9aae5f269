"""Job types the tests run on real workers. Each records what happened in Redis, so a test
can count runs and read start times from outside the worker."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from tasks import PermanentError, job_type
from tasks.connection import get_redis
from tasks.job import Job


def _runs(key: str | None, job: Job) -> int:
    if not key:
        return 0
    client = get_redis()
    client.rpush(f"{key}:order", job.id)
    return client.incr(f"{key}:runs")


def echo(job: Job, value: Any = None) -> Any:
    return value


def record(job: Job, key: str) -> int:
    """Counts its runs and notes the order jobs started in."""
    return _runs(key, job)


def sleep(job: Job, seconds: float, key: str | None = None) -> float:
    _runs(key, job)
    time.sleep(seconds)
    return seconds


def flaky(job: Job, key: str, fail_times: int) -> int:
    run = _runs(key, job)
    if run <= fail_times:
        raise RuntimeError(f"failure {run}")
    return run


def permanent(job: Job) -> None:
    raise PermanentError("this input can never work")


def progress(job: Job, steps: int) -> str:
    for step in range(1, steps + 1):
        job.update_progress(round(100 * step / steps))
    job.update_progress({"stage": "done", "steps": steps})
    return "done"


def gather(job: Job, key: str | None = None) -> dict[str, Any]:
    """A flow's parent: counts its runs and sums its children's values (tests/test_flows.py)."""
    run = _runs(key, job)
    values = job.children_values()
    numbers = [v for v in values.values() if isinstance(v, int | float)]
    return {"run": run, "children": len(values), "sum": sum(numbers),
            "failures": job.children_failures(), "seen": sorted(values)}  # fmt: skip


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def die(job: Job, how: str, key: str | None = None, seconds: float = 0) -> None:
    """Ends its run the hard ways a job can (tests/test_process_deaths.py)."""
    _runs(key, job)
    if how == "exit":
        sys.exit(0)
    if how == "keyboard":
        raise KeyboardInterrupt
    if how == "unprintable":
        raise _Unprintable()
    if how == "os_exit":
        os._exit(3)
    if how == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if how == "gil":  # a C call that keeps the GIL: no thread of this process runs meanwhile
        ctypes.PyDLL(None).sleep(int(seconds))
        return
    if how == "hang":
        time.sleep(seconds)
    if how == "stubborn":  # ignores its soft time limit: only the hard one ends it
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(SoftTimeLimitExceeded):
                time.sleep(0.1)


def patient(job: Job, seconds: float, via: str, key: str | None = None) -> str:
    """Runs up to `seconds` in short steps, each seeing a cancel its own way
    (tests/test_job_control.py): `progress` and `log` report (JobCancelled raises there),
    `flag` reads job.cancelled and returns, `ignore` only sleeps, `busy` spins on the CPU."""
    _runs(key, job)
    deadline = time.monotonic() + seconds
    step = 0
    while time.monotonic() < deadline:
        step += 1
        if via == "progress":
            job.update_progress(min(99, step))
        elif via == "log":
            job.log(f"step {step}")
        elif via == "flag" and job.cancelled:
            return f"stopped at step {step}"
        if via != "busy":
            time.sleep(0.05)
    return "ran to the end"


# One variant of each per queue: a test picks a queue no other test's workers consume.
# A worker started with JOBYARD_TEST_WITHOUT="t-echo.cleanup,..." lacks those: a worker of
# an older release, in the rolling deploy test.
_without = set(filter(None, os.environ.get("JOBYARD_TEST_WITHOUT", "").split(",")))
for _queue in settings.JOBYARD_QUEUES:
    for _func in (echo, record, sleep, flaky, permanent, progress, die, gather, patient):
        if f"t-{_func.__name__}.{_queue}" not in _without:
            job_type(f"t-{_func.__name__}.{_queue}", queue=_queue)(_func)


@job_type("t-typed", queue="default", attempts=1)
def typed(job: Job, count: int, label: str = "x", ratio: float = 0.5) -> dict[str, Any]:
    return {"count": count, "label": label, "ratio": ratio}


@job_type("t-fail", queue="default", attempts=1)
def fail(job: Job, message: str) -> None:
    """Fails at once with `message` as its reason."""
    raise PermanentError(message)


@job_type("t-throws", queue="default", throws=(KeyError,))
def throws(job: Job) -> None:
    raise KeyError("missing")


# The job type docs/jobs.md declares in its first example, so that the examples after it
# run on a worker that knows it.
for _page in ("jobs.md", "flows.md"):
    _doc = (Path(__file__).resolve().parents[2] / "docs" / _page).read_text()
    exec(re.findall(r"```python\n(.*?)```", _doc, re.S)[0], {})


@job_type("t-attempts", queue="default")
def attempts_seen(job: Job, key: str) -> dict[str, Any]:
    """Records what a running job reads of its attempts, and fails until its last one:
    the API boilerplate's `if job.attemptsMade < job.opts.attempts` pattern."""
    client = get_redis()
    seen = {"attempts": job.attempts, "attemptsMade": job.attempts_made,
            "optsAttempts": job.opts.get("attempts")}  # fmt: skip
    client.rpush(key, __import__("json").dumps(seen))
    if job.attempts_made + 1 < job.opts["attempts"]:
        raise RuntimeError(f"attempt {job.attempts_made + 1} fails")
    return seen
