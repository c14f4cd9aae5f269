"""`celery inspect` and `celery control` work against a Jobyard worker, run as an operator
runs them: the CLI, in a process of its own that builds its broker connection from the
project's settings (a redis:// URL naming Jobyard's transport)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from project.celery import app
from tasks import enqueue, get_job
from tests.conftest import wait_for

BASE_DIR = Path(__file__).resolve().parent.parent
QUEUE = "cleanup"  # no shared worker consumes it


def run_celery(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "project", *args, "--timeout", "5", "--json"],
        env=os.environ, cwd=BASE_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def celery(*args: str) -> dict:
    """`celery -A project <args> --json`: the replies, by worker name."""
    result = run_celery(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    replies = json.loads(result.stdout.strip().splitlines()[-1])
    # inspect prints {name: reply}; control prints [{name: reply}, ...]
    return replies if isinstance(replies, dict) else {k: v for r in replies for k, v in r.items()}


def pool_size(name: str) -> int:
    stats = app.control.inspect([name], timeout=2).stats() or {}
    return len(stats.get(name, {}).get("pool", {}).get("processes", []))


@pytest.mark.slow
def test_inspect_and_control_commands_reach_a_jobyard_worker(start_worker):
    worker = start_worker([QUEUE], concurrency=2)
    name = worker.name

    assert celery("inspect", "ping", "-d", name) == {name: {"ok": "pong"}}

    job = enqueue(f"t-sleep.{QUEUE}", {"seconds": 3})
    wait_for(lambda: get_job(QUEUE, job.id).state == "active", message="the job running")
    active = celery("inspect", "active", "-d", name)[name]
    assert [task["id"] for task in active] == [job.id]
    assert active[0]["name"] == f"t-sleep.{QUEUE}"

    revoked_id = uuid.uuid4().hex
    reply = celery("control", "revoke", revoked_id, "-d", name)[name]["ok"]
    assert revoked_id in reply and reply.endswith("flagged as revoked")
    assert revoked_id in app.control.inspect([name], timeout=2).revoked()[name]

    assert celery("control", "pool_grow", "1", "-d", name) == {name: {"ok": "pool will grow"}}
    wait_for(lambda: pool_size(name) == 3, message="a third pool process")

    reply = celery("control", "rate_limit", f"t-echo.{QUEUE}", "600/m", "-d", name)
    assert reply == {name: {"ok": "new rate limit set successfully"}}
    assert enqueue(f"t-echo.{QUEUE}", {"value": 1}).wait_until_finished(timeout=30) == 1
    assert job.wait_until_finished(timeout=30) == 3

    # A worker told to shut down does so without a reply (Celery's way), so the CLI says
    # that no node replied; the worker then stops as on SIGTERM.
    run_celery("control", "shutdown", "-d", name)
    assert worker.process.wait(60) == 0
