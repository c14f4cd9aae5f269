"""Sentinel: the broker, the registry and the result backend find the master through the
sentinels with its password and database, and jobs survive a failover: the master is
SIGKILLed mid-flow, a replica takes over, and every job whose enqueue returned completes."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import kombu
import pytest
from flower.utils.broker import Broker

from tasks import enqueue, get_job, keys
from tasks.worker.transport import SentinelChannel
from tests.redis_servers import (
    SentinelCluster,
    celery_app_for,
    registry_on,
    settings_for,
    wait_until,
)

QUEUE = "webhooks"  # no shared worker consumes it
PASSWORD = "p@ss:w/rd"  # URL-quoted in the broker URL, plain in AUTH
DB = 3


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    servers = SentinelCluster(tmp_path / "sentinel", PASSWORD)
    yield servers
    servers.stop()


def sentinel_env(cluster: SentinelCluster) -> dict[str, str]:
    # REDIS_URL's host is not used with sentinels: its password and database are.
    return {
        "REDIS_URL": f"redis://:{PASSWORD.replace('@', '%40').replace('/', '%2F')}@unused:1/{DB}",
        "REDIS_SENTINELS": cluster.addresses,
        "REDIS_SENTINEL_MASTER": cluster.master_name,
    }


class Enqueuer(threading.Thread):
    """Enqueues a job every few milliseconds, keeping the ids of those whose enqueue
    returned (acknowledged); an enqueue that raises (no master) is tried again later."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.acked: list[str] = []
        self.errors = 0
        self.running = threading.Event()
        self.running.set()
        self.paused = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            if not self.running.is_set():
                self.paused.set()
                self.running.wait(0.1)
                continue
            self.paused.clear()
            try:
                job = enqueue(f"t-echo.{QUEUE}", {"value": len(self.acked)})
            except Exception:  # noqa: BLE001  (ConnectionError, ReadOnlyError, ...: retried)
                self.errors += 1
                time.sleep(0.2)
                continue
            self.acked.append(job.id)
            time.sleep(0.02)

    def pause(self) -> None:
        self.running.clear()
        assert self.paused.wait(10), "the enqueuer did not pause"


def completed(job_ids: list[str]) -> list[str]:
    """The ids of `job_ids` whose job is not completed (yet)."""
    return [i for i in job_ids if (job := get_job(QUEUE, i)) is None or job.state != "completed"]


@pytest.mark.slow
def test_jobs_keep_flowing_through_a_failover_and_none_acknowledged_is_lost(
    cluster, start_worker, tmp_path
):
    env = sentinel_env(cluster)
    values = settings_for(env)
    assert values["CELERY_BROKER_URL"].startswith("sentinel://")
    worker = start_worker([QUEUE], env=env, wait=False, output=tmp_path / "worker.log")
    control = celery_app_for(values).control
    wait_until(lambda: control.ping([worker.name], timeout=0.5), 60, "the worker answering")

    enqueuer = Enqueuer()
    with registry_on(values):
        enqueuer.start()
        try:
            wait_until(lambda: len(enqueuer.acked) >= 30, 30, "30 jobs enqueued")
            before = list(enqueuer.acked)
            wait_until(lambda: not completed(before[:20]), 30, "the first jobs completed")

            # Redis replicates asynchronously: a write the master acknowledged in the instant
            # before it died may never reach the replica (docs/operations.md). Enqueues stop
            # while the replica catches up, so the failover loses no acknowledged enqueue;
            # the worker's own writes (takes, completions) race the kill as they would.
            enqueuer.pause()
            wait_until(cluster.replicated, 10, "the replica caught up")
            old = cluster.kill_master()
            enqueuer.running.set()
            new = wait_until(
                lambda: (port := cluster.master_port()) != old and port, 30, "a failover"
            )
            acked_at_failover = len(enqueuer.acked)
            wait_until(
                lambda: len(enqueuer.acked) >= acked_at_failover + 30, 60,
                "30 more jobs enqueued after the failover",
            )  # fmt: skip
        finally:
            enqueuer.done.set()
            enqueuer.join(10)

        acked = enqueuer.acked
        deadline = time.monotonic() + 90
        while (left := completed(acked)) and time.monotonic() < deadline:
            time.sleep(0.5)
        states = {i: getattr(get_job(QUEUE, i), "state", None) for i in left}
        assert not left, f"{len(left)} of {len(acked)} acknowledged jobs not completed: {states}"
        # The jobs are in database 3 of the new master, and nothing is in database 0.
        node = cluster.node_client(new, db=DB)
        assert node.exists(keys.job(QUEUE, acked[-1]))
        assert cluster.node_client(new, db=0).dbsize() == 0
        # The worker consumes with take.lua on the new master: idle, it waits on the queue's
        # bell and empties it (kombu's own consumer never pops a bell: it would stay full).
        wait_until(lambda: node.llen(keys.bell(QUEUE)) == 0, 10, "the idle consumer's bell")

    # The worker still answers control commands. This client's connections were to the old
    # master: its first command may fail (as with kombu's own Sentinel transport), and the
    # next finds the new master.
    wait_until(lambda: control.ping([worker.name], timeout=1), 30, "the worker answering again")
    with kombu.Connection(
        values["CELERY_BROKER_URL"],
        transport_options=values["CELERY_BROKER_TRANSPORT_OPTIONS"],
    ) as conn:  # fmt: skip
        assert isinstance(conn.default_channel, SentinelChannel)
        assert conn.default_channel.client.connection_pool.connection_kwargs["db"] == DB
        uri = conn.as_uri(include_password=True)
    flower = Broker(uri, broker_options=values["CELERY_BROKER_TRANSPORT_OPTIONS"],
                    broker_use_ssl=values["CELERY_BROKER_USE_SSL"])  # fmt: skip
    assert asyncio.run(flower.queues([QUEUE])) == [{"name": QUEUE, "messages": 0}]

    # The project's result backend, from the same settings, finds the new master and keeps
    # Celery's results in database 3; a job's result reads through the registry.
    results = celery_app_for(values)
    assert type(results.backend).__name__ == "JobyardSentinelBackend"
    task_id = str(uuid.uuid4())
    results.backend.store_result(task_id, {"answer": 42}, "SUCCESS")
    assert results.AsyncResult(task_id).get(timeout=10) == {"answer": 42}
    assert cluster.node_client(new, db=DB).exists(f"celery-task-meta-{task_id}")
    with registry_on(values):
        assert results.AsyncResult(acked[-1]).get(timeout=10) == len(acked) - 1
