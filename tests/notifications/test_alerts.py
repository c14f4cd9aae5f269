"""Alerts (issue #13): rules past their thresholds and back, one open and one resolve
notification per episode (Message rows and webhook deliveries counted), the silent worker
rule with a SIGKILLed worker, Redis memory with a stubbed reading, the scheduled job on a
real worker, and the Prometheus rules' thresholds."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from django.db import IntegrityError, transaction
from django.utils import timezone

import tasks
from notifications import alerts
from notifications.alerts import rules
from notifications.alerts.episodes import apply
from notifications.models import Alert, Delivery, Endpoint, Message
from tasks.scheduling.defaults import default_schedules
from tasks.testing import WorkerProcess, run_job
from tests.conftest import wait_for

BASE_DIR = Path(__file__).resolve().parents[2]
RULES_FILE = BASE_DIR / "deploy" / "alerts" / "prometheus-rules.yaml"
OPS = "ops@example.com"
OFF = {
    key: None for key in ("WAITING_DEPTH", "FAILURE_RATE", "STALLED_MINUTES", "NO_WORKER_MINUTES")
}
BASE = {**OFF, "FAILURE_WINDOW_MINUTES": 15, "FAILURE_MIN_FINISHED": 10,
        "REDIS_MEMORY_PERCENT": 80.0, "WORKER_LOST": False, "QUEUES": {}}  # fmt: skip


@pytest.fixture
def quiet(settings):
    """Every rule off but those a test turns on; alerts go to OPS and one webhook endpoint."""
    settings.ALERTS = {**BASE, "QUEUES": {}}
    settings.ALERT_EMAILS = [OPS]
    Endpoint.objects.create(url="https://hooks.example.com/a", secret="x" * 24,
                            event_types=["alert.opened", "alert.resolved"])  # fmt: skip
    return settings


def sent(rule: str, what: str) -> tuple[int, int]:
    """(emails, webhook deliveries) announcing `rule` `what` (opened / resolved)."""
    emails = Message.objects.filter(template=f"alert-{what}", context__rule=rule).count()
    hooks = Delivery.objects.filter(event_type=f"alert.{what}", payload__rule=rule).count()
    return emails, hooks


@pytest.mark.django_db(transaction=True)
def test_a_queue_past_its_depth_and_failure_thresholds_and_back(quiet):
    quiet.ALERTS["QUEUES"] = {"catalog": {"WAITING_DEPTH": 3, "FAILURE_RATE": 0.5,
                                          "FAILURE_MIN_FINISHED": 4}}  # fmt: skip
    # Depth: no worker consumes `catalog` here, so enqueued jobs wait.
    for i in range(4):
        tasks.enqueue("t-echo.catalog", {"value": i})
    alerts.check()
    assert sent(rules.WAITING_DEPTH, "opened") == (1, 1)
    for i in range(2):
        tasks.enqueue("t-echo.catalog", {"value": i})
    alerts.check()  # still open: nothing more is sent, the peak follows
    assert sent(rules.WAITING_DEPTH, "opened") == (1, 1)
    open_depth = Alert.objects.get(rule=rules.WAITING_DEPTH, resolved_at__isnull=True)
    assert (open_depth.subject, open_depth.peak_value, open_depth.threshold) == ("catalog", 6, 3)
    tasks.Queue("catalog").clean(0, 1000, "waiting")
    alerts.check()
    assert sent(rules.WAITING_DEPTH, "resolved") == (1, 1)
    depth = Alert.objects.get(rule=rules.WAITING_DEPTH)
    assert depth.resolved_at is not None and depth.peak_value == 6 and depth.last_value == 0

    # Failure rate: 1 of 2 is not an incident (fewer finished than the minimum).
    run_job("t-permanent.catalog")
    run_job("t-echo.catalog")
    alerts.check()
    assert sent(rules.FAILURE_RATE, "opened") == (0, 0)
    for _ in range(3):
        run_job("t-permanent.catalog")  # 4 failed of 5
    alerts.check()
    alerts.check()
    assert sent(rules.FAILURE_RATE, "opened") == (1, 1)
    for _ in range(6):
        run_job("t-echo.catalog")  # 4 of 11: under 50 %
    alerts.check()
    assert sent(rules.FAILURE_RATE, "resolved") == (1, 1)
    failure = Alert.objects.get(rule=rules.FAILURE_RATE)
    assert failure.peak_value == 0.8 and failure.last_value == round(4 / 11, 4)
    assert Alert.objects.filter(resolved_at__isnull=True).count() == 0
    # The email is the template's, to ALERT_EMAILS; the webhook payload names the alert.
    mail = Message.objects.get(template="alert-opened", context__rule=rules.FAILURE_RATE)
    assert mail.recipient == OPS and "failure-rate catalog" in mail.subject
    hook = Delivery.objects.get(event_type="alert.resolved", payload__rule=rules.FAILURE_RATE)
    assert hook.payload["subject"] == "catalog" and hook.payload["peakValue"] == 0.8


@pytest.mark.django_db(transaction=True)
def test_a_second_episode_is_a_new_alert_and_two_checks_open_one(quiet):
    now = timezone.now()
    firing = rules.Reading("waiting-depth", "default", 5, 3, True, "5 waiting")
    calm = rules.Reading("waiting-depth", "default", 0, 3, False, "0 waiting")
    assert len(apply([firing], now).opened) == 1
    assert apply([firing], now).opened == []
    apply([calm], now)
    apply([calm], now)
    assert len(apply([firing], now).opened) == 1
    assert Alert.objects.count() == 2
    assert sent("waiting-depth", "opened") == (2, 2)
    assert sent("waiting-depth", "resolved") == (1, 1)
    # What keeps concurrent checks to one open alert: the database itself.
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(rule="waiting-depth", subject="default", started_at=now,
                             checked_at=now, threshold=3, peak_value=5, last_value=5, message="")  # fmt: skip


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_opens_an_alert_and_a_stopped_one_does_not(quiet, start_worker):
    quiet.ALERTS["WORKER_LOST"] = True
    killed = start_worker(["cleanup"], concurrency=1, pool="solo")
    stopped = start_worker(["cleanup"], concurrency=1, pool="solo")
    alerts.check()
    assert not Alert.objects.exists()
    stopped.stop()
    killed.kill()
    # Its heartbeat expires (3 intervals: 1.5 s in the tests) and the check notices.
    wait_for(lambda: any(w["name"] == killed.name for w in tasks.lost_workers()), timeout=10)
    alerts.check()
    alert = Alert.objects.get(rule=rules.WORKER_LOST)
    assert alert.subject == killed.name and alert.resolved_at is None
    assert sent(rules.WORKER_LOST, "opened") == (1, 1)
    alerts.check()
    assert sent(rules.WORKER_LOST, "opened") == (1, 1)
    # The same worker back (a restart on its host): resolved, once.
    again = WorkerProcess(["cleanup"], 1, "solo", cwd=BASE_DIR)
    again.name = killed.name
    try:
        again.start()
        alerts.check()
    finally:
        again.stop()
    assert sent(rules.WORKER_LOST, "resolved") == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_redis_memory_over_its_share_of_maxmemory(quiet, monkeypatch):
    reading = {"used": 90, "max": 100}
    monkeypatch.setattr(tasks, "redis_memory", lambda: dict(reading))
    alerts.check()
    alerts.check()
    assert sent(rules.REDIS_MEMORY, "opened") == (1, 1)
    reading["used"] = 95
    alerts.check()
    reading["used"] = 10
    alerts.check()
    assert sent(rules.REDIS_MEMORY, "resolved") == (1, 1)
    alert = Alert.objects.get(rule=rules.REDIS_MEMORY)
    assert (alert.peak_value, alert.threshold, alert.subject) == (95.0, 80.0, "redis")
    reading.update(used=10**9, max=0)  # no maxmemory: no percentage, no alert
    alerts.check()
    assert Alert.objects.count() == 1


@pytest.mark.django_db
def test_redis_memory_reads_info():
    memory = tasks.redis_memory()
    assert memory["used"] > 0 and memory["max"] >= 0


def figures(waiting: int = 0, paused: bool = False, per_minute=()) -> dict:
    minute = int(time.time() // 60)
    series = [{"minute": (minute - 59 + i) * 60, "completed": 0, "failed": 0, "retried": 0}
              for i in range(60)]  # fmt: skip
    for back, (done, failed) in enumerate(per_minute):
        series[-1 - back].update(completed=done, failed=failed)
    return {"counts": {"waiting": waiting, "paused": 0}, "paused": paused, "lastHour": series}


@pytest.mark.pure
def test_stalled_and_no_worker_need_jobs_that_waited(settings):
    settings.ALERTS = {**BASE, "STALLED_MINUTES": 10, "NO_WORKER_MINUTES": 2}
    worker = {"name": "w", "queues": ["default"]}

    def fired(fig, age, workers=()):
        snap = rules.Snapshot(time.time(), {"default": fig}, list(workers), [], {"used": 0, "max": 0},
                              {"default": age})  # fmt: skip
        return {r.rule for r in rules.readings(snap) if r.firing}

    assert fired(figures(5), age=11 * 60) == {rules.STALLED, rules.NO_WORKER}
    assert fired(figures(5), age=11 * 60, workers=[worker]) == {rules.STALLED}
    assert fired(figures(5), age=60) == set()  # young jobs: a deploy gap, not an incident
    assert fired(figures(5, per_minute=[(0, 0), (1, 0)]), age=11 * 60, workers=[worker]) == set()
    assert fired(figures(5, paused=True), age=11 * 60) == set()
    assert fired(figures(0), age=None) == set()


@pytest.mark.pure
def test_check_alerts_runs_every_minute_on_the_default_queue():
    schedule = next(s for s in default_schedules() if s.job_type == "check-alerts")
    assert schedule.cron == "* * * * *"
    assert tasks.get_job_type("check-alerts").queue == "default"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_scheduled_job_opens_an_alert_on_a_real_worker(start_worker):
    """Past the default depth (1,000), so that whichever worker of `default` runs the check
    (the session's, started with the default thresholds, or this test's) opens it."""
    start_worker(["default"], concurrency=1, pool="solo")
    tasks.enqueue_bulk([("t-echo.catalog", {"value": i}) for i in range(1001)])
    result = tasks.enqueue("check-alerts").wait_until_finished(timeout=30)
    assert "waiting-depth:catalog" in result["opened"]
    assert tasks.enqueue("check-alerts").wait_until_finished(timeout=30)["opened"] == []
    opened = Alert.objects.filter(rule=rules.WAITING_DEPTH, subject="catalog")
    assert opened.count() == 1 and opened.get().resolved_at is None


@pytest.mark.pure
def test_the_prometheus_rules_use_the_same_thresholds(settings):
    settings.ALERTS = {**BASE, "FAILURE_RATE": 0.05, "STALLED_MINUTES": 10, "WAITING_DEPTH": 1000}
    found = {
        r["alert"]: r for g in yaml.safe_load(RULES_FILE.read_text())["groups"] for r in g["rules"]
    }
    failure = found["JobyardFailureRatioHigh"]["expr"]
    assert "> 0.05" in failure and "[15m]" in failure and ">= 10" in failure
    assert "[10m]" in found["JobyardQueueStalled"]["expr"]
    assert "> 1000" in found["JobyardQueueDepthHigh"]["expr"]
    assert "> 0.8" in found["JobyardRedisMemoryHigh"]["expr"]
    # Jobyard's own metrics (the web's /metrics), not Flower's.
    exprs = " ".join(rule["expr"] for rule in found.values())
    assert "jobyard_jobs_failed_total" in exprs and "flower_" not in exprs


@pytest.mark.pure
def test_promtool_checks_and_tests_the_rules():
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: bin/test installs Debian's prometheus package")
    folder = RULES_FILE.parent
    for args in (
        ["check", "rules", RULES_FILE.name],
        ["test", "rules", "prometheus-rules.test.yaml"],
    ):
        done = subprocess.run(["promtool", *args], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
