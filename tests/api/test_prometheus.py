"""/metrics: Jobyard's own state for Prometheus, read from the registry at scrape time.

The counters are totals the state-changing scripts keep, so after a mixed run on a real
worker they equal what the registry says happened; the text passes `promtool check
metrics`; nobody reads it without credentials unless METRICS_AUTH=none says so."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tasks import Queue, enqueue, get_job, keys, scripts
from tasks.connection import get_redis
from tasks.testing import run_job
from tests.api.conftest import ApiClient, assert_error
from tests.conftest import wait_for

#: A queue no other test's worker consumes while this module runs.
QUEUE = "catalog"


def scrape(client) -> dict[str, dict[tuple, float]]:
    """name -> {labels as sorted pairs: value}, of every sample /metrics answers."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(response.content.decode())


def samples(text: str) -> dict[str, dict[tuple, float]]:
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        found.setdefault(family.name, {})  # described, even with no sample yet
        for s in family.samples:
            found.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found[name].get(tuple(sorted(labels.items())), 0.0)


@pytest.mark.django_db
def test_it_answers_401_json_without_credentials(anonymous):
    assert_error(anonymous.get("/metrics"), 401, "not_authenticated")
    assert_error(ApiClient("jy_nope_secret").get("/metrics"), 401, "invalid_token")


@pytest.mark.django_db
def test_a_read_token_reads_it(reader):
    found = scrape(reader)
    assert value(found, "jobyard_scrape_section_up", section="queues") == 1
    assert (("queue", QUEUE), ("state", "waiting")) in found["jobyard_queue_jobs"]


@pytest.mark.django_db
def test_metrics_auth_none_answers_anyone(anonymous, settings):
    settings.METRICS_AUTH = "none"
    assert "jobyard_queue_jobs" in scrape(anonymous)
    assert_error(anonymous.post("/metrics"), 405, "method_not_allowed")


@pytest.mark.django_db(transaction=True)  # enqueue sends at once, outside a transaction
def test_rate_limited_stalled_and_expired_are_counted(reader, settings):
    queue = "cleanup"
    settings.JOBYARD_QUEUES = {**settings.JOBYARD_QUEUES,
                               queue: {**settings.JOBYARD_QUEUES[queue], "rate_limit": (1, 60_000)}}  # fmt: skip
    assert run_job("t-echo.cleanup").state == "completed"
    assert run_job("t-echo.cleanup").state == "delayed"  # over the limit: held back
    settings.JOBYARD_QUEUES = {**settings.JOBYARD_QUEUES,
                               queue: {**settings.JOBYARD_QUEUES[queue], "rate_limit": None}}  # fmt: skip

    # A run whose worker vanished: its lock gone, found stalled, sent again.
    stalled = enqueue("t-echo.cleanup", {})
    assert isinstance(scripts.claim(queue, stalled.id, "gone:1", "tok-1"), scripts.Claim)
    get_redis().delete(keys.lock(queue, stalled.id))
    assert scripts.stalled(queue, 1, 50) == [stalled.id]

    # A plain task past its `expires`, failed by the worker's revoke handler.
    expired = enqueue("t-echo.cleanup", {})
    assert isinstance(scripts.claim(queue, expired.id, "w:1", "tok-2"), scripts.Claim)
    assert scripts.fail(queue, expired.id, "tok-2", "expired", "", -1, 50, 0, expired=True)

    found = scrape(reader)
    labels = {"queue": queue, "job_type": "t-echo.cleanup"}
    assert value(found, "jobyard_jobs_rate_limited_total", **labels) == 1
    assert value(found, "jobyard_jobs_stalled_total", **labels) == 1
    assert value(found, "jobyard_jobs_expired_total", **labels) == 1
    assert value(found, "jobyard_jobs_failed_total", **labels) == 1
    assert value(found, "jobyard_jobs_completed_total", **labels) == 1
    # Declared job types of the queue are there from 0, so rate() sees their first jobs.
    assert (
        value(found, "jobyard_jobs_completed_total", queue=queue, job_type="t-sleep.cleanup") == 0
    )
    assert ((("job_type", "t-sleep.cleanup"), ("queue", queue))
            in found["jobyard_jobs_completed_total"])  # fmt: skip


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (bin/bootstrap installs Debian's prometheus)")
    result = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                            capture_output=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_mixed_run_scrapes_as_the_registry_counts_and_passes_promtool(start_worker, make_token):
    start_worker([QUEUE], concurrency=2)
    key = f"prom-{uuid.uuid4().hex[:8]}"
    jobs = [enqueue("t-echo.catalog", {"value": i}) for i in range(4)]
    jobs += [enqueue("t-permanent.catalog", {}) for _ in range(2)]
    # One failure then success (1 retry); failures past its 2 attempts (1 retry, failed).
    jobs.append(enqueue("t-flaky.catalog", {"key": f"{key}-a", "fail_times": 1}))
    jobs.append(enqueue("t-flaky.catalog", {"key": f"{key}-b", "fail_times": 5}, attempts=2))
    for job in jobs:
        wait_for(lambda job=job: get_job(QUEUE, job.id).state in ("completed", "failed"),
                 timeout=60, message=f"{job.id} finished")  # fmt: skip

    response = ApiClient(make_token("read")).get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    found = samples(text)

    # The registry's figures for this run, job by job.
    finished = [get_job(QUEUE, job.id) for job in jobs]
    for name in ("t-echo.catalog", "t-permanent.catalog", "t-flaky.catalog"):
        mine = [j for j in finished if j.name == name]
        labels = {"queue": QUEUE, "job_type": name}
        completed = sum(j.state == "completed" for j in mine)
        failed = sum(j.state == "failed" for j in mine)
        retried = sum(j.attempts_made - 1 for j in mine)
        assert value(found, "jobyard_jobs_completed_total", **labels) == completed, name
        assert value(found, "jobyard_jobs_failed_total", **labels) == failed, name
        assert value(found, "jobyard_jobs_retried_total", **labels) == retried, name
        attempts = sum(j.attempts_made for j in mine)
        assert value(found, "jobyard_job_processing_seconds_count", **labels) == attempts
        assert value(found, "jobyard_job_waiting_seconds_count", **labels) == attempts
        assert (
            value(found, "jobyard_job_processing_seconds_bucket", le="+Inf", **labels) == attempts
        )
    assert value(found, "jobyard_jobs_completed_total", queue=QUEUE, job_type="t-echo.catalog") == 4
    assert value(found, "jobyard_jobs_retried_total", queue=QUEUE, job_type="t-flaky.catalog") == 2

    counts = Queue(QUEUE).counts()
    for state, count in counts.items():
        assert value(found, "jobyard_queue_jobs", queue=QUEUE, state=state) == count, state
    assert value(found, "jobyard_queue_workers", queue=QUEUE) == 1
    assert value(found, "jobyard_queue_worker_concurrency", queue=QUEUE) == 2
    assert value(found, "jobyard_redis_memory_used_bytes") > 0
    assert all(v == 1 for v in found["jobyard_scrape_section_up"].values()), found[
        "jobyard_scrape_section_up"]  # fmt: skip
    promtool_check(text)


@pytest.mark.django_db
def test_the_rules_the_dashboard_and_the_keda_example_name_only_metrics_it_exposes(reader):
    import json
    import re
    from pathlib import Path

    deploy = Path(__file__).resolve().parents[2] / "deploy"
    exposed = set(scrape(reader))
    texts = {
        "rules": (deploy / "alerts" / "prometheus-rules.yaml").read_text(),
        "keda": (deploy / "k8s" / "worker-keda.yaml").read_text(),
        "dashboard": " ".join(
            t["expr"]
            for p in json.loads((deploy / "grafana" / "jobyard.json").read_text())["panels"]
            for t in p["targets"]
        ),
    }
    for where, text in texts.items():
        named = set(re.findall(r"\bjobyard_[a-z_]+", text))
        assert named, where
        # A histogram is queried by its _bucket series, which every scrape has once observed.
        missing = {n for n in named if n not in exposed and not n.endswith("_bucket")}
        assert not missing, (where, missing)
