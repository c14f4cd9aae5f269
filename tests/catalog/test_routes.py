"""Every catalog job type from every route: the trigger API, the CLI and the admin's
trigger form, on a real worker, each effect asserted in PostgreSQL.

The routes already proven elsewhere are not repeated here: update-comets (test_comets),
generate-report (test_reports), aggregate-daily (test_aggregation), schedule-recurring-
comets through the API (test_comets_docs), ingest-dataset through the CLI
(test_imports). This table is the rest."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from catalog.models import BatchStatistic, Comet, ImportBatch, Observation, OutboundEvent
from tasks import get_job, list_schedules
from tasks.testing import WorkerProcess
from tests.catalog.test_imports import served  # noqa: F401  (a fixture: GOOD over HTTP)

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def routes_worker(django_db_setup, tmp_path_factory) -> Iterator[Path]:
    """One worker for every catalog job type's queue, its media in a temporary directory."""
    root = tmp_path_factory.mktemp("media")
    proc = WorkerProcess(["catalog", "cleanup", "default"], concurrency=1, cwd=BASE_DIR, env={
        "MEDIA_ROOT": str(root), "CATALOG_IMPORT_ALLOW_PRIVATE_URLS": "true"}).start()  # fmt: skip
    yield root
    proc.stop()


@dataclass
class Case:
    """A job type's data (as callers spell it) made by `arrange`, and `check` of its effect."""

    arrange: Callable[[str, Any], dict[str, Any]]
    check: Callable[[dict[str, Any], Any], None]


def schedule_data(tag: str, _: Any) -> dict[str, Any]:
    minute = uuid.UUID(tag).int % 60  # each route's own pattern, so each check is its own
    return {"pattern": f"{minute} 5 * * 2", "maxMagnitude": 11.5}


def schedule_check(data: dict[str, Any], _: Any) -> None:
    (weekly,) = [s for s in list_schedules() if s["key"] == "comets-weekly"]
    assert (weekly["jobType"], weekly["pattern"]) == ("update-comets", data["pattern"])


def cleanup_data(tag: str, _: Any) -> dict[str, Any]:
    Comet.objects.create(name=f"X/{tag[:8]}", is_active=False,
                         last_seen=timezone.now() - timedelta(days=30))  # fmt: skip
    Comet.objects.create(name=f"Y/{tag[:8]}", is_active=True,
                         last_seen=timezone.now() - timedelta(days=30))  # fmt: skip
    return {"daysOld": 20, "type": "comets"}


def cleanup_check(data: dict[str, Any], result: Any) -> None:
    assert not Comet.objects.filter(name__startswith="X/").exists()
    assert Comet.objects.filter(name__startswith="Y/").exists()  # still active: kept
    assert result["deleted"]["comets"] >= 1


def ingest_data(tag: str, served_url: str) -> dict[str, Any]:
    return {"tenantId": "routes", "source": "url", "versionTag": tag[:12],
            "url": f"{served_url}/obs.csv"}  # fmt: skip


def ingest_check(data: dict[str, Any], _: Any) -> None:
    batch = ImportBatch.objects.get(tenant_id="routes", version_tag=data["versionTag"])
    # The import completes once its calculation's flow did (docs/imports.md).
    get_job("catalog", f"finish-import-routes-{batch.pk}").wait_until_finished(timeout=60)
    batch.refresh_from_db()
    assert (batch.status, batch.rows_imported, batch.rows_failed) == ("completed", 4, 2)
    assert Observation.objects.filter(batch=batch).count() == 4


def calculate_data(tag: str, _: Any) -> dict[str, Any]:
    batch = ImportBatch.objects.create(tenant_id="routes", dataset="observations",
                                       version_tag=tag[:12], source="csv",
                                       status=ImportBatch.COMPLETED)  # fmt: skip
    now = timezone.now()
    Observation.objects.bulk_create(
        Observation(batch=batch, tenant_id="routes", line=line, designation="12P",
                    observed_at=now - timedelta(hours=line), magnitude=4.0 + line)
        for line in (2, 3, 4)
    )  # fmt: skip
    return {"tenantId": "routes", "batchId": batch.pk}


def calculate_check(data: dict[str, Any], _: Any) -> None:
    (stat,) = BatchStatistic.objects.filter(batch_id=data["batchId"])
    assert (stat.designation, stat.count, stat.mean_magnitude) == ("12P", 3, 7.0)
    assert OutboundEvent.objects.filter(key=f"calc.batch.completed:{data['batchId']}").exists()


CASES = {
    "schedule-recurring-comets": Case(schedule_data, schedule_check),
    "cleanup-old-data": Case(cleanup_data, cleanup_check),
    "ingest-dataset": Case(ingest_data, ingest_check),
    "calculate-batch": Case(calculate_data, calculate_check),
}
MISSING = [
    ("schedule-recurring-comets", "cli"), ("schedule-recurring-comets", "admin"),
    ("cleanup-old-data", "api"), ("cleanup-old-data", "cli"), ("cleanup-old-data", "admin"),
    ("ingest-dataset", "api"), ("ingest-dataset", "admin"),
    ("calculate-batch", "api"), ("calculate-batch", "cli"), ("calculate-batch", "admin"),
]  # fmt: skip


def trigger(route: str, job_type: str, data: dict[str, Any], job_id: str, api, admin_client) -> str:
    """Send the job through `route`; the queue it went to."""
    if route == "api":
        answer = api.post_json("/api/admin/jobs/trigger", {"jobType": job_type, **data,
                                                           "options": {"jobId": job_id}})  # fmt: skip
        assert answer.status_code == 202, answer.content
        assert answer.json()["jobId"] == job_id
        return answer.json()["queue"]
    if route == "cli":
        params = [arg for key, value in data.items()
                  for arg in ("--param", f"{key}={json.dumps(value) if not isinstance(value, str) else value}")]  # fmt: skip
        out = io.StringIO()
        call_command("jobs", "trigger", job_type, *params, "--job-id", job_id, "--json",
                     stdout=out, stderr=io.StringIO())  # fmt: skip
        return json.loads(out.getvalue())["queue"]
    response = admin_client.post("/admin/trigger/", {
        "job_type": job_type, "data": json.dumps(data), "job_id": job_id})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
    from tasks import get_job_type

    return get_job_type(job_type).queue


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("job_type", "route"), MISSING)
def test_each_route_runs_the_job_on_a_worker(job_type, route, routes_worker, served, api,  # noqa: F811
                                             admin_client, settings):  # fmt: skip
    settings.MEDIA_ROOT = str(routes_worker)
    tag = str(uuid.uuid4())
    case = CASES[job_type]
    data = case.arrange(tag, served)
    job_id = f"{route}-{job_type}-{tag[:8]}"
    queue = trigger(route, job_type, data, job_id, api, admin_client)
    job = get_job(queue, job_id)
    result = job.wait_until_finished(timeout=60)
    assert job.refresh().state == "completed"
    case.check(data, result)
