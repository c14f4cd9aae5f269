"""Flower as Jobyard runs it (`python -m tasks.flower`, the Procfile's `flower`): a real Flower
process watching a real worker that sends task events.

What ran shows in Flower as Celery reports it, for plain tasks and job types alike: a
success is a SUCCESS, a final failure a FAILURE, an attempt that a retry follows a RETRY of
the same task. The Broker page counts each queue's waiting messages over its priority lists,
queues without a worker included. Every page asks for the basic auth, /metrics and
/healthcheck included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from project.celery import app
from project.localdev import free_port
from tasks import enqueue
from tests.conftest import BASE_DIR, wait_for
from tests.jobapp import tasks as plain

AUTH = ("flower", "not-the-real-one")
#: A queue the session's shared worker does not consume: only this test's worker runs these.
QUEUE = "notifications"
#: A queue no worker consumes: its jobs wait in the broker lists.
IDLE_QUEUE = "cleanup"


class FlowerProcess:
    """`python -m tasks.flower` as a child process on a free port, stopped by its pid."""

    def __init__(self, output: Path, args: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = output
        self.args = args
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> FlowerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tasks.flower", "--address=127.0.0.1",
             f"--port={self.port}", "--enable-events=false", *self.args],
            cwd=BASE_DIR, env=self.env, start_new_session=True,
            stdout=self.output.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def answers() -> bool:
            assert self.process and self.process.poll() is None, self.log()
            with contextlib.suppress(requests.ConnectionError):
                return self.get("/healthcheck").status_code == 200
            return False

        wait_for(answers, timeout, 0.2, "Flower to answer")

    def get(self, path: str, auth: tuple[str, str] | None = AUTH) -> requests.Response:
        return requests.get(self.url + path, auth=auth, timeout=10)

    def log(self) -> str:
        return self.output.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def flower(tmp_path: Path) -> Iterator[FlowerProcess]:
    # Flower reads FLOWER_BASIC_AUTH from the environment, as the Procfile's line has it.
    env = {**os.environ, "FLOWER_BASIC_AUTH": ":".join(AUTH)}
    # Flower switches task events on in every worker it sees unless told not to; this
    # test's worker sends them itself (-E), and the session's shared worker is left alone.
    proc = FlowerProcess(tmp_path / "flower.log", [], env).start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def _events(flower: FlowerProcess, worker: str) -> Counter:
    """flower_events_total of one worker, by (event type, task name)."""
    response = flower.get("/metrics")
    assert response.status_code == 200
    counts: Counter = Counter()
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "flower_events_total" and sample.labels["worker"] == worker:
                counts[sample.labels["type"], sample.labels["task"]] += int(sample.value)
    return counts


def _online(flower: FlowerProcess, worker: str) -> bool:
    text = flower.get("/metrics").text
    return f'flower_worker_online{{worker="{worker}"}} 1.0' in text


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_flower_counts_successes_and_final_failures_and_queue_lengths(
    flower: FlowerProcess, start_worker
) -> None:
    worker = start_worker([QUEUE], args=("-E",))
    # Flower hears the worker: its events reach Flower before any task is sent.
    wait_for(lambda: _online(flower, worker.name), 30, 0.2, "Flower to see the worker")

    key = uuid.uuid4().hex[:8]
    ADD, BOOM = plain.add.name, plain.boom.name
    ECHO, PERMANENT, FLAKY = (f"t-{n}.{QUEUE}" for n in ("echo", "permanent", "flaky"))
    succeed = [plain.add.apply_async((i, i), queue=QUEUE).id for i in range(3)]
    succeed += [enqueue(ECHO, {"value": i}).id for i in range(2)]
    # One failed attempt, then a success: a RETRY, then SUCCESS, of one task.
    succeed.append(enqueue(FLAKY, {"key": f"{key}-once", "fail_times": 1}).id)
    fail = [plain.boom.apply_async(("final",), queue=QUEUE).id]
    fail.append(enqueue(PERMANENT).id)
    # Three attempts (the default), all failed: RETRY, RETRY, then FAILURE.
    fail.append(enqueue(FLAKY, {"key": f"{key}-always", "fail_times": 99}).id)

    def states() -> dict[str, str]:
        tasks = flower.get(f"/api/tasks?workername={worker.name}").json()
        return {task_id: task["state"] for task_id, task in tasks.items()}

    seen = wait_for(
        lambda: (s := states()) and all(s.get(i) in ("SUCCESS", "FAILURE") for i in succeed + fail) and s,
        60, 0.3, "Flower to see every task finish",
    )  # fmt: skip
    # Exactly these tasks, one entry each whatever their attempts, in their final states.
    assert set(seen) == set(succeed + fail)
    assert Counter(seen[i] for i in succeed) == {"SUCCESS": 6}
    assert Counter(seen[i] for i in fail) == {"FAILURE": 3}

    events = _events(flower, worker.name)
    assert {task: n for (kind, task), n in events.items() if kind == "task-succeeded"} == {
        ADD: 3, ECHO: 2, FLAKY: 1,
    }  # fmt: skip
    assert {task: n for (kind, task), n in events.items() if kind == "task-failed"} == {
        BOOM: 1, PERMANENT: 1, FLAKY: 1,
    }  # fmt: skip
    # The attempts a retry followed: counted as retries, never as failures.
    assert {task: n for (kind, task), n in events.items() if kind == "task-retried"} == {FLAKY: 3}

    # Queue lengths: five jobs wait on a queue no worker consumes, over three priority
    # lists; a delayed job is not in the broker yet and is not counted.
    for priority in (1, 1, None, None, 10):
        enqueue(f"t-echo.{IDLE_QUEUE}", {}, **({"priority": priority} if priority else {}))
    enqueue(f"t-echo.{IDLE_QUEUE}", {}, delay=600_000)
    response = flower.get("/api/queues/length")
    assert response.status_code == 200, response.text
    lengths = {q["name"]: q["messages"] for q in response.json()["active_queues"]}
    assert lengths[IDLE_QUEUE] == 5
    assert lengths[QUEUE] == 0
    assert {q.name for q in app.conf.task_queues} <= set(lengths)  # every declared queue
    page = flower.get("/broker")
    assert page.status_code == 200
    row = page.text.split(f'<tr id="{IDLE_QUEUE}">', 1)[1].split("</tr>", 1)[0]
    assert '<td class="broker-secondary-column">5</td>' in row


def test_every_flower_page_asks_for_the_basic_auth(flower: FlowerProcess) -> None:
    for path in ("/metrics", "/healthcheck", "/api/tasks", "/api/queues/length", "/broker", "/"):
        for auth in (None, ("flower", "wrong"), ("someone", AUTH[1])):
            response = flower.get(path, auth=auth)
            assert response.status_code == 401, (path, auth, response.status_code)
            if not path.startswith("/api/"):  # Flower's API answers a bare 401
                assert response.headers["WWW-Authenticate"] == 'Basic realm="flower"', path
            assert "flower_" not in response.text
        assert flower.get(path).status_code == 200, path
    assert "flower_worker_online" in flower.get("/metrics").text

    # The container health checks' probe: 0 with the credentials, not without.
    probe = BASE_DIR / "deploy" / "flower-healthcheck"
    env = {"PATH": os.environ["PATH"], "FLOWER_PORT": str(flower.port)}
    good = subprocess.run([probe], env={**env, "FLOWER_BASIC_AUTH": ":".join(AUTH)})
    assert good.returncode == 0
    bad = subprocess.run(
        [probe], env={**env, "FLOWER_BASIC_AUTH": "flower:wrong"}, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "answered 401" in bad.stderr


@pytest.mark.pure
@pytest.mark.parametrize("credentials", [None, ""])
def test_flower_does_not_start_without_basic_auth(credentials: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    if credentials is not None:
        env["FLOWER_BASIC_AUTH"] = credentials
    result = subprocess.run(
        [sys.executable, "-m", "tasks.flower", "--address=127.0.0.1", f"--port={free_port()}"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "set FLOWER_BASIC_AUTH=user:password" in result.stderr
