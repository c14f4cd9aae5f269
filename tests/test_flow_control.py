"""Who runs when: idempotent ids, global rate limits, pause, priority; and what workers say."""

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks import Queue, all_queue_metrics, enqueue, enqueue_bulk, get_job, get_workers
from tasks.connection import get_redis
from tasks.events import read_events
from tests.conftest import order, runs, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def key() -> str:
    return f"t:{uuid.uuid4().hex[:8]}"


def test_fifty_concurrent_enqueues_of_one_job_id_create_one_job():
    def send(_):
        return enqueue("t-echo.catalog", {"value": 1}, job_id="the-only-one")

    with ThreadPoolExecutor(max_workers=50) as pool:
        jobs = list(pool.map(send, range(50)))
    assert {job.id for job in jobs} == {"the-only-one"}
    assert Queue("catalog").counts()["waiting"] == 1
    assert get_redis().llen("catalog:4") == 1  # one message in the broker
    created = [e for e in read_events({"catalog": "0-0"}) if e.event == "waiting"]
    assert len(created) == 1
    again = enqueue("t-echo.catalog", {"value": 2}, job_id="the-only-one")
    assert again.data == {"value": 1}  # the existing job, untouched


def test_a_global_rate_limit_holds_across_three_workers(start_worker):
    env = {"QUEUE_NOTIFICATIONS_RATE_LIMIT": "10/1s"}
    for _ in range(3):
        start_worker(["notifications"], concurrency=2, env=env)
    k = key()
    jobs = enqueue_bulk([("t-record.notifications", {"key": k}) for _ in range(35)])
    wait_for(lambda: runs(k) == 35, timeout=60, message="all 35 jobs to run")
    wait_for(lambda: Queue("notifications").counts()["completed"] == 35)
    starts = sorted(get_job("notifications", j.id).processed_on for j in jobs)
    busiest = max(sum(1 for s in starts if t <= s < t + 1000) for t in starts)
    assert busiest <= 10, f"{busiest} starts in one second"
    assert starts[-1] - starts[0] >= 3000  # 35 jobs at 10/s need more than three seconds
    assert Queue("notifications").counts()["failed"] == 0


def test_pause_stops_every_worker_survives_restarts_and_resume_continues(start_worker):
    workers = [start_worker(["webhooks"]), start_worker(["webhooks"])]
    queue = Queue("webhooks")
    k = key()
    flowing = enqueue_bulk([("t-sleep.webhooks", {"seconds": 0.05, "key": k}) for _ in range(200)])
    wait_for(lambda: runs(k) >= 10, message="jobs to flow")
    queue.pause()
    paused_at = time.time() * 1000
    time.sleep(1.5)
    started = [
        j.processed_on for j in (get_job("webhooks", f.id) for f in flowing) if j.processed_on
    ]
    assert started and max(started) < paused_at + 1000, "a job started over a second after pause"
    counts = queue.counts()
    assert counts["waiting"] == 0 and counts["paused"] > 0 and counts["active"] == 0
    assert get_job("webhooks", flowing[-1].id).state == "paused"

    for worker in workers:
        worker.stop()
    start_worker(["webhooks"])
    late = enqueue("t-record.webhooks", {"key": k})  # a paused queue still accepts jobs
    assert late.state == "paused"  # as enqueue reports it, and as it reads back
    ran = runs(k)
    time.sleep(1.5)
    assert runs(k) == ran and queue.is_paused()
    assert late.refresh().state == "paused"

    queue.resume()
    wait_for(lambda: queue.counts()["completed"] >= 100, timeout=60)  # retention keeps 100
    wait_for(lambda: runs(k) == 201, timeout=60)
    assert queue.counts()["paused"] == 0 and queue.counts()["waiting"] == 0


def test_a_priority_1_job_overtakes_a_backlog_of_normal_ones(start_worker):
    k = key()
    enqueue_bulk([("t-record.catalog", {"key": k}) for _ in range(100)])
    urgent = enqueue("t-record.catalog", {"key": k}, priority=1)
    start_worker(["catalog"], concurrency=1)
    wait_for(lambda: runs(k) == 101, timeout=60)
    assert order(k)[0] == urgent.id


def test_it_logs_job_start_complete_and_failure_as_structured_lines(start_worker, tmp_path):
    log = tmp_path / "worker.log"
    # No -l, as the Procfile starts workers: LOG_LEVEL decides, not Celery's default.
    start_worker(
        ["notifications"],
        env={"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"},
        output=log,
        loglevel=None,
    )
    ok = enqueue("t-echo.notifications", {"value": 1})
    bad = enqueue("t-permanent.notifications", {})
    ok.wait_until_finished(timeout=30)
    with pytest.raises(Exception):  # noqa: B017 - the failure is the point
        bad.wait_until_finished(timeout=30)
    time.sleep(0.3)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    mine = {(line["event"], line.get("job_id")): line for line in lines if "job_id" in line}
    start = mine[("job_start", ok.id)]
    assert (start["job_type"], start["queue"], start["attempt"]) == (
        "t-echo.notifications",
        "notifications",
        1,
    )
    assert mine[("job_complete", ok.id)]["duration_ms"] >= 0
    failed = mine[("job_failed", bad.id)]
    assert failed["reason"] == "PermanentError: this input can never work"
    assert (failed["attempt"], failed["job_type"], failed["queue"]) == (
        1,
        "t-permanent.notifications",
        "notifications",
    )


def test_workers_and_metrics_describe_what_runs(start_worker):
    worker = start_worker(["notifications"], concurrency=3)
    k = key()
    job = enqueue("t-sleep.notifications", {"seconds": 1.5, "key": k})
    wait_for(lambda: runs(k) == 1)
    found = wait_for(
        lambda: [w for w in get_workers() if w["name"] == worker.name and w["running"] == 1],
        message="the worker's heartbeat with one job running",
    )[0]
    assert found["queues"] == ["notifications"] and found["concurrency"] == 3
    assert found["paused"] == [] and found["lastHeartbeat"] > time.time() * 1000 - 5000
    job.wait_until_finished(timeout=30)
    enqueue("t-permanent.notifications", {})
    wait_for(lambda: Queue("notifications").counts()["failed"] == 1)
    metrics = all_queue_metrics()["notifications"]
    assert metrics["counts"]["completed"] == 1 and metrics["counts"]["failed"] == 1
    assert metrics["completedPerMinute"] >= 1 and metrics["failedPerMinute"] >= 1
    assert metrics["failureRate"] == 0.5
    assert metrics["processingMs"]["samples"] == 2 and metrics["processingMs"]["p95"] >= 1500
    assert metrics["waitingMs"]["samples"] == 2
    assert metrics["workers"] >= 1 and metrics["utilization"] is not None
    assert len(metrics["lastHour"]) == 60
