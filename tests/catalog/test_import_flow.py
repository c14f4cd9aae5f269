"""An import's calculation is a flow (issue #14, docs/imports.md): `ingest-dataset` writes
the rows, then creates `finish-import` with a `calculate-batch` child per range of
designations; the parent runs after every child, completes the import and writes
`calc.batch.completed` once; a child failing past its attempts fails the parent naming it,
and the import is marked failed with that reason. On a real worker of the catalog queue
with one designation per child."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.imports import service
from catalog.imports.calculate import parts
from catalog.models import BatchStatistic, ImportBatch, Observation, OutboundEvent
from tasks import JobFailed, enqueue, get_job
from tasks.connection import get_redis
from tasks.testing import WorkerProcess
from tests.jobapp.jobs import CALC_FAILS

BASE_DIR = Path(__file__).resolve().parents[2]


def unique(prefix: str = "v") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def dataset(*designations: str) -> bytes:
    rows = "".join(f"{d},2024-10-0{day}T04:00:00,{4 + day}\n" for d in designations
                   for day in (1, 2))  # fmt: skip
    return ("designation,observed_at,magnitude\n" + rows).encode()


# --- the ranges (no worker) ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_designations_are_cut_into_ranges_that_cover_the_batch_once(settings):
    batch = ImportBatch.objects.create(tenant_id="acme", dataset="obs", version_tag=unique(),
                                       source="csv", status=ImportBatch.CALCULATING)  # fmt: skip
    assert parts(batch.pk, 2) == []
    names = ["E", "A", "C", "B", "D", "A", "C"]
    Observation.objects.bulk_create(
        Observation(batch=batch, tenant_id="acme", line=line, designation=name,
                    observed_at="2024-10-01T00:00:00Z", magnitude=5)
        for line, name in enumerate(names, start=2)
    )  # fmt: skip
    assert parts(batch.pk, 2) == [("", "B"), ("B", "D"), ("D", "E")]
    assert parts(batch.pk, 5) == [("", "E")]
    assert parts(batch.pk, 1) == [("", "A"), ("A", "B"), ("B", "C"), ("C", "D"), ("D", "E")]
    settings.CATALOG_CALC_PART_DESIGNATIONS = 1
    tree = service.calculation_flow(batch)
    assert tree["name"] == "finish-import"
    assert tree["opts"]["job_id"] == f"finish-import-acme-{batch.pk}"
    assert [c["opts"]["job_id"] for c in tree["children"]] == [
        f"calc-acme-{batch.pk}-{n}" for n in (1, 2, 3, 4, 5)]  # fmt: skip


# --- on a real worker --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flow_worker(django_db_setup, tmp_path_factory) -> Iterator[Path]:
    """A worker on the catalog queue; one designation per `calculate-batch` child."""
    root = tmp_path_factory.mktemp("media")
    proc = WorkerProcess(["catalog"], concurrency=1, cwd=BASE_DIR, env={
        "MEDIA_ROOT": str(root), "CATALOG_CALC_PART_DESIGNATIONS": "1"}).start()  # fmt: skip
    yield root
    proc.stop()


@pytest.fixture
def media(settings, flow_worker):
    settings.MEDIA_ROOT = str(flow_worker)


def upload(content: bytes) -> ImportBatch:
    batch, job, created = service.start_import(
        tenant_id="acme", dataset="obs", version_tag=unique(),
        upload=SimpleUploadedFile("obs.csv", content))  # fmt: skip
    assert created and job is not None
    return batch


def ingested(batch: ImportBatch) -> dict:
    return get_job("catalog", batch.job_id).wait_until_finished(timeout=60)


def job(job_id: str):
    found = get_job("catalog", job_id)
    assert found is not None, job_id
    return found


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_parent_completes_the_import_after_every_child_and_emits_once(media):
    batch = upload(dataset("3P", "1P", "2P"))
    result = ingested(batch)
    parent_id = f"finish-import-acme-{batch.pk}"
    assert result["status"] == "calculating" and result["calculation"] == parent_id
    value = job(parent_id).wait_until_finished(timeout=60)

    assert value == {"batchId": batch.pk, "designations": 3}
    parent = job(parent_id)
    children = [job(f"calc-acme-{batch.pk}-{n}") for n in (1, 2, 3)]
    assert [(c.state, c.data["after"], c.data["upto"]) for c in children] == [
        ("completed", "", "1P"), ("completed", "1P", "2P"), ("completed", "2P", "3P")]  # fmt: skip
    assert all(c.parent == f"catalog/{parent_id}" for c in children)
    assert parent.attempts_made == 1
    assert parent.processed_on >= max(c.finished_on for c in children)  # ran after the last
    batch.refresh_from_db()
    assert (batch.status, batch.rows_imported, batch.finished_at is not None) == (
        "completed",
        6,
        True,
    )
    stats = {s.designation: s.count for s in BatchStatistic.objects.filter(batch=batch)}
    assert stats == {"1P": 2, "2P": 2, "3P": 2}
    (event,) = OutboundEvent.objects.filter(key=f"calc.batch.completed:{batch.pk}")
    assert event.payload["designations"] == 3 and event.payload["observations"] == 6

    # A retried ingest (here a second run of the same batch) creates nothing twice.
    again = enqueue("ingest-dataset", {"tenant_id": "acme", "source": "csv", "dataset": "obs",
                    "version_tag": batch.version_tag, "batch_id": batch.pk},
                    job_id=unique("again-"))  # fmt: skip
    assert again.wait_until_finished(timeout=60)["skipped"] is True
    assert job(parent_id).processed_on == parent.processed_on
    assert get_job("catalog", f"calc-acme-{batch.pk}-4") is None
    assert Observation.objects.filter(batch=batch).count() == 6
    assert OutboundEvent.objects.filter(key=f"calc.batch.completed:{batch.pk}").count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_child_failing_past_its_attempts_fails_the_parent_and_the_import(media):
    bad = unique("Z")  # sorts last: the third child's
    get_redis().sadd(CALC_FAILS, bad)
    try:
        batch = upload(dataset("1P", "2P", bad))
        ingested(batch)
        parent_id, bad_id = f"finish-import-acme-{batch.pk}", f"calc-acme-{batch.pk}-3"
        # calculate-batch's own policy: 3 attempts, back-offs scaled down by the test settings.
        with pytest.raises(JobFailed) as failed:
            job(parent_id).wait_until_finished(timeout=180)
    finally:
        get_redis().srem(CALC_FAILS, bad)

    child_reason = f"RuntimeError: no statistics for {bad} today"
    named = f"child catalog/{bad_id} failed: {child_reason}"
    assert failed.value.reason == f"CalculationFailed: {named}"
    child = job(bad_id)
    assert (child.state, child.attempts_made, child.failed_reason) == ("failed", 3, child_reason)
    assert [job(f"calc-acme-{batch.pk}-{n}").state for n in (1, 2)] == ["completed"] * 2
    assert job(parent_id).attempts_made == 1  # permanent: the parent is not retried
    batch.refresh_from_db()
    assert (batch.status, batch.failed_reason) == ("failed", named)
    assert not OutboundEvent.objects.filter(key=f"calc.batch.completed:{batch.pk}").exists()

    # Mended: the child retried, then the parent, complete the import (and emit once).
    job(bad_id).retry()
    job(bad_id).wait_until_finished(timeout=60)
    job(parent_id).retry()
    assert job(parent_id).wait_until_finished(timeout=60)["designations"] == 3
    batch.refresh_from_db()
    assert (batch.status, batch.failed_reason) == ("completed", "")
    assert OutboundEvent.objects.filter(key=f"calc.batch.completed:{batch.pk}").count() == 1
