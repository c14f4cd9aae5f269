"""What a Celery worker's main process does besides consuming: the maintenance loop.

One daemon thread per worker (started when the worker is ready, stopped at shutdown):
- promotes due delayed jobs (delays and retry back-offs) of every queue to the broker:
  delays live in Redis, never in a worker's memory, so they survive restarts and never
  meet the broker's visibility timeout;
- finds stalled jobs of the queues it consumes (their lock expired: the worker running
  them died) and sends them again, up to the stall limit;
- sends again the waiting jobs of those queues whose message is gone (a backstop);
- renews the locks of the jobs this worker holds, whatever its pool processes are doing;
- writes this worker's heartbeat (host, queues, concurrency, running jobs);
- kills the pool processes of its running jobs cancelled over the grace ago (cancels.py).

Each of these is one atomic script, so any number of workers can run the loop at once.
A SIGTERM starts the shutdown grace timer (WORKER_SHUTDOWN_GRACE).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import structlog
from celery import signals
from django.conf import settings

from tasks import keys, scripts, tracing
from tasks.connection import get_redis
from tasks.redis_settings import warn_once
from tasks.worker.cancels import CancelWatch
from tasks.worker.claims import set_node_name
from tasks.worker.losses import cut_off_running, held_claims
from tasks.worker.runner import set_pool

log = structlog.get_logger("jobyard.worker")


class Maintenance:
    def __init__(self, hostname: str, queues: list[str], concurrency: int, running,
                 pool: Any = None) -> None:  # fmt: skip
        self.hostname = hostname
        self.cancels = CancelWatch(pool)
        self.queues = queues
        self.concurrency = concurrency
        self.running = running  # () -> number of jobs this worker is running now
        self.started_at = int(time.time() * 1000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jobyard-maintenance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        client = get_redis()
        client.delete(keys.worker(self.hostname))
        client.zrem(keys.workers(), self.hostname)

    def promote(self) -> float:
        """Send due delayed jobs; seconds until the next one is due (capped by the interval)."""
        promoted = scripts.promote(list(settings.JOBYARD_QUEUES))
        interval = settings.JOBYARD["PROMOTE_INTERVAL_MS"] / 1000
        if promoted.next_due_ms < 0:
            return interval
        return max(0.0, min(interval, (promoted.next_due_ms - promoted.now_ms) / 1000))

    def check_stalled(self) -> list[str]:
        max_stalled = settings.JOBYARD["MAX_STALLED"]
        found = []
        for queue in self.queues:
            keep = settings.JOBYARD_QUEUES[queue]["keep_failed"]
            ids = scripts.stalled(queue, max_stalled, keep)
            for job_id in ids:
                log.warning("job_stalled", job_id=job_id, queue=queue)
            found += ids
        return found

    def renew_locks(self) -> list[str]:
        """Renew the locks of the jobs this worker holds, from its main process: a pool
        process whose job holds the GIL (a long C call) cannot renew its own in time, and
        its job would be run a second time while the first run goes on."""
        held = held_claims()
        return scripts.extend_locks(held) if held else []

    def reconcile(self) -> list[str]:
        """Waiting jobs with no message left to carry them: sent again (see reconcile.lua)."""
        sent = scripts.reconcile(self.queues, settings.JOBYARD["RECONCILE_GRACE_MS"])
        for job_id in sent:
            log.warning("job_reconciled", job_id=job_id, reason="waiting with no message")
        return sent

    def heartbeat(self) -> None:
        conf = settings.JOBYARD
        now = int(time.time() * 1000)
        key = keys.worker(self.hostname)
        pipe = get_redis().pipeline(transaction=False)
        pipe.hset(key, mapping={
            "host": socket.gethostname(), "pid": os.getpid(), "queues": json.dumps(self.queues),
            "concurrency": self.concurrency, "running": self.running(),
            "lastHeartbeat": now, "startedAt": self.started_at,
        })  # fmt: skip
        pipe.pexpire(key, conf["HEARTBEAT_INTERVAL_MS"] * 3)
        pipe.zadd(keys.workers(), {self.hostname: now})
        pipe.execute()

    def _loop(self) -> None:
        conf = settings.JOBYARD
        next_stalled = next_heartbeat = next_renewal = 0.0
        sleep = 0.0
        while not self._stop.wait(sleep):
            try:
                sleep = self.promote()
                self.cancels.step()  # kill what was cancelled and would not stop
                now = time.monotonic()
                if now >= next_renewal:
                    self.renew_locks()
                    next_renewal = now + conf["LOCK_DURATION_MS"] / 3000
                if now >= next_stalled:
                    self.check_stalled()
                    self.reconcile()
                    next_stalled = now + conf["STALLED_INTERVAL_MS"] / 1000
                if now >= next_heartbeat:
                    self.heartbeat()
                    next_heartbeat = now + conf["HEARTBEAT_INTERVAL_MS"] / 1000
            except Exception:  # Redis away or a bug: log, back off, keep the worker alive
                log.exception("maintenance_failed")
                sleep = 1.0


_maintenance: Maintenance | None = None


@signals.celeryd_after_setup.connect
def _remember_node_name(sender: str = "", instance: Any = None, **kwargs: Any) -> None:
    set_node_name(sender)
    if instance is not None:
        set_pool(pool_name(instance.pool_cls))


def pool_name(pool_cls: Any) -> str:
    """`threads`, `gevent`, `solo`, `prefork`, ... from Celery's pool class (or its alias)."""
    if isinstance(pool_cls, str):
        return pool_cls
    module = pool_cls.__module__.rsplit(".", 1)[-1]
    return {"thread": "threads"}.get(module, module)


@signals.worker_ready.connect
def _start_maintenance(sender: Any = None, **kwargs: Any) -> None:
    global _maintenance
    from celery.worker import state

    consumer = sender
    queues = sorted(q.name for q in consumer.task_consumer.queues)
    _maintenance = Maintenance(
        consumer.hostname, [q for q in queues if q in settings.JOBYARD_QUEUES],
        consumer.controller.concurrency, lambda: len(state.active_requests),
        consumer.pool,
    )  # fmt: skip
    _maintenance.start()
    warn_once("worker")


@signals.worker_init.connect
def _start_tracing(**kwargs: Any) -> None:
    """Traces, when OTEL_EXPORTER_OTLP_ENDPOINT is set (tasks/tracing.py): set up in the main
    process, before a prefork pool forks (the SDK restarts its export thread in each child)."""
    tracing.setup("jobyard-worker", celery=True)


@signals.worker_init.connect
def _follow_embedded_workers(**kwargs: Any) -> None:
    """celery.contrib.testing's embedded worker (celery.contrib.pytest's `celery_worker`)
    sends no worker_ready nor worker_shutdown: run the loop from when it says it has started
    to when it has stopped, or its retries and countdowns, kept as durable delays, would
    never come due."""
    from celery.contrib.testing.worker import test_worker_started, test_worker_stopped

    test_worker_started.connect(_start_embedded, dispatch_uid="jobyard-maintenance")
    test_worker_stopped.connect(_stop_embedded, dispatch_uid="jobyard-maintenance")


def _start_embedded(worker: Any = None, consumer: Any = None, **kwargs: Any) -> None:
    _start_maintenance(sender=consumer)
    worker.jobyard_maintenance = _maintenance  # a session's worker and a test's may overlap


def _stop_embedded(worker: Any = None, **kwargs: Any) -> None:
    if (running := getattr(worker, "jobyard_maintenance", None)) is not None:
        running.stop()


@signals.worker_shutting_down.connect
def _start_grace_timer(sig: str = "", how: str = "", **kwargs: Any) -> None:
    grace = settings.JOBYARD["SHUTDOWN_GRACE_S"]
    if how == "Cold":  # SIGQUIT from outside: Celery has begun cancelling what runs
        _cut_off("cut off by the worker's cold shutdown")
    if how != "Warm":
        return
    log.info("worker_shutting_down", grace_s=grace)

    def cold_shutdown() -> None:
        # Recorded before the cold shutdown cancels them: each such run counts as an attempt
        # with this cause, and the job's retry policy decides whether and when it runs again.
        _cut_off(f"cut off by the worker's shutdown after {grace:g} s grace")
        os.kill(os.getpid(), signal.SIGQUIT)

    call_later(grace, cold_shutdown)


def call_later(seconds: float, func: Any) -> None:
    """Call `func` in `seconds`, from a signal handler. Under `-P gevent` (threading
    monkey-patched) the handler runs in gevent's hub, where starting a thread waits for it
    to start, which gevent refuses there (BlockingSwitchOutError): a greenlet instead."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        import gevent

        gevent.spawn_later(seconds, func)
        return
    timer = threading.Timer(seconds, func)
    timer.daemon = True
    timer.start()


def _cut_off(reason: str) -> None:
    cut = cut_off_running(reason)
    if cut:
        log.warning("worker_cut_off_jobs", jobs=cut, reason=reason)


@signals.worker_shutdown.connect
def _stop_maintenance(**kwargs: Any) -> None:
    if _maintenance is not None:
        _maintenance.stop()
