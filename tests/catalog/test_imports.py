"""Imports (#12): ingest-dataset -> calculate-batch -> outbox, through the API, the CLI and
the admin, on a real worker of the catalog queue, effects checked in PostgreSQL."""

from __future__ import annotations

import http.server
import io
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from catalog.imports import fetch, ingest, service
from catalog.imports.readers import Position, read_csv
from catalog.imports.rows import DatasetError, check_columns, parse_row
from catalog.models import BatchStatistic, ImportBatch, ImportRowError, Observation, OutboundEvent
from tasks import JobFailed, enqueue, get_job
from tasks.api.models import ApiToken
from tasks.testing import WorkerProcess

BASE_DIR = Path(__file__).resolve().parents[2]

GOOD = (
    "designation,observed_at,magnitude,observer\n"
    "C/2023 A3,2024-10-01T04:00:00,5.1,ADA\n"
    "C/2023 A3,2024-10-03T04:00:00+02:00,4.5,ADA\n"
    "12P,2024-03-01 20:00:00,8.0,\n"
    "12P,not-a-date,7.0,BOB\n"
    "12P,2024-03-02T20:00:00Z,nan,BOB\n"
    "C/2023 A3,2024-10-02T04:00:00Z,4.8,EVE\n"
)


def unique(prefix: str = "v") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


# --- the plain functions ------------------------------------------------------------------


@pytest.mark.pure
def test_it_names_missing_and_unknown_columns():
    with pytest.raises(DatasetError) as info:
        check_columns(["designation", "when", "magnitude", "colour"])
    assert "missing columns: observed_at" in str(info.value)
    assert "unknown columns: 'when', 'colour'" in str(info.value)


@pytest.mark.pure
def test_it_validates_one_row():
    row, problems = parse_row({"designation": " 1P ", "observed_at": "1986-02-09T00:00:00",
                               "magnitude": "2.4", "observer": "", "method": ""})  # fmt: skip
    assert problems == [] and row[0] == "1P" and row[1].tzinfo is not None and row[2] == 2.4
    row, problems = parse_row({"designation": "", "observed_at": "x", "magnitude": True})
    assert row is None
    assert [p[0] for p in problems] == ["designation", "observed_at", "magnitude"]


@pytest.mark.pure
def test_it_reports_bad_utf8_with_its_line_and_reads_on():
    data = b"designation,observed_at,magnitude\n1P,2024-01-01,5\n\xff\xfeP,2024-01-01,5\n2P,2024-01-01,6\n"
    records = list(read_csv(io.BytesIO(data), Position()))
    assert [(r.line, bool(r.values)) for r in records] == [(2, True), (3, False), (4, True)]
    assert "not valid UTF-8" in records[1].problems[0][1]


@pytest.mark.pure
@pytest.mark.parametrize("address", ["10.1.2.3", "127.0.0.1", "169.254.169.254", "::1"])
def test_it_refuses_private_targets_without_connecting(monkeypatch, address):
    monkeypatch.setattr(fetch, "resolve", lambda host, port: [address])

    def no_connection(*args, **kwargs):
        raise AssertionError("connected")

    monkeypatch.setattr(fetch.socket, "create_connection", no_connection)
    with pytest.raises(DatasetError, match="private, loopback or reserved"):
        fetch.download("https://data.example.org/obs.csv", io.BytesIO(), max_bytes=10)


def stored_batch(text: str, *, fmt: str = "csv", tenant: str = "acme") -> ImportBatch:
    batch = ImportBatch(tenant_id=tenant, dataset="obs", version_tag=unique(), source=fmt,
                        format=fmt)  # fmt: skip
    batch.file.save(f"{batch.version_tag}.{fmt}", ContentFile(text.encode()), save=False)
    batch.save()
    return batch


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


@pytest.mark.django_db(transaction=True)
def test_a_failed_chunk_rolls_back_and_the_rerun_writes_each_row_once(media, monkeypatch):
    lines = "".join(f"D{i % 3},2024-01-01T00:00:{i:02d},{i % 10}\n" for i in range(10))
    batch = stored_batch("designation,observed_at,magnitude\n" + lines)
    real, calls = ingest.write_observations, []

    def fail_second_chunk(rows):
        calls.append(len(rows))
        real(rows)  # written, then the chunk's transaction fails: all of it must go
        if len(calls) == 2:
            raise ConnectionError("database went away")

    monkeypatch.setattr(ingest, "write_observations", fail_second_chunk)
    with pytest.raises(ConnectionError):
        ingest.import_batch(batch.pk, chunk_rows=4)
    batch.refresh_from_db()
    assert Observation.objects.filter(batch=batch).count() == 4  # the first chunk only
    assert (batch.rows_imported, batch.resume_line, batch.status) == (4, 5, "running")
    monkeypatch.setattr(ingest, "write_observations", real)
    assert ingest.import_batch(batch.pk, chunk_rows=4)["rowsImported"] == 10
    assert sorted(Observation.objects.filter(batch=batch).values_list("line", flat=True)) == list(
        range(2, 12)
    )
    # Idempotent: a completed batch is not imported again.
    assert ingest.import_batch(batch.pk)["skipped"] is True
    assert Observation.objects.filter(batch=batch).count() == 10


@pytest.mark.django_db(transaction=True)
def test_json_lines_import_with_row_errors(media):
    text = ('{"designation": "1P", "observed_at": "2024-01-01T00:00:00Z", "magnitude": 4}\n'
            '{"designation": "1P", "magnitude": 4, "colour": "red"}\n'
            "[1, 2]\n"
            '{"designation": "2P", "observed_at": "2024-01-01T00:00:00Z", "magnitude": "6.5"}\n')  # fmt: skip
    batch = stored_batch(text, fmt="json")
    result = ingest.import_batch(batch.pk)
    assert (result["rowsImported"], result["rowsFailed"]) == (2, 2)
    errors = list(ImportRowError.objects.filter(batch=batch).values_list("line", "field"))
    assert errors == [(2, "colour"), (3, "")]


# --- end to end, on a real worker -----------------------------------------------------------


@pytest.fixture(scope="module")
def catalog_worker(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Path]:
    """A worker on the catalog queue; small chunks so that the tests cross chunk bounds."""
    root = tmp_path_factory.mktemp("media")
    proc = WorkerProcess(["catalog"], concurrency=1, cwd=BASE_DIR, env={
        "MEDIA_ROOT": str(root), "CATALOG_IMPORT_CHUNK_ROWS": "2",
        "CATALOG_IMPORT_ALLOW_PRIVATE_URLS": "true"}).start()  # fmt: skip
    yield root
    proc.stop()


@pytest.fixture
def shared_media(settings, catalog_worker):
    settings.MEDIA_ROOT = str(catalog_worker)


@pytest.fixture
def api(transactional_db) -> Client:
    _, raw = ApiToken.issue(unique("imports-"), "write")
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def finish(job_id: str, queue: str = "catalog"):
    job = get_job(queue, job_id)
    assert job is not None, job_id
    job.wait_until_finished(timeout=60)
    return job.refresh()


def assert_pipeline_ran(batch: ImportBatch) -> None:
    # The calculation is a flow: its parent completes the import once its child is done.
    parent = finish(f"finish-import-{batch.tenant_id}-{batch.pk}")
    assert parent.state == "completed" and parent.attempts_made == 1
    calc = finish(f"calc-{batch.tenant_id}-{batch.pk}-1")
    assert calc.state == "completed" and calc.attempts_made == 1
    batch.refresh_from_db()
    assert (batch.status, batch.rows_total, batch.rows_imported, batch.rows_failed) == (
        "completed", 6, 4, 2)  # fmt: skip
    stats = {s.designation: s for s in BatchStatistic.objects.filter(batch=batch)}
    assert set(stats) == {"C/2023 A3", "12P"}
    comet = stats["C/2023 A3"]
    assert (comet.count, comet.min_magnitude, comet.max_magnitude) == (3, 4.5, 5.1)
    assert comet.mean_magnitude == pytest.approx((5.1 + 4.5 + 4.8) / 3)
    assert comet.first_observed_at.isoformat() == "2024-10-01T04:00:00+00:00"
    assert comet.last_observed_at.isoformat() == "2024-10-03T02:00:00+00:00"
    assert stats["12P"].count == 1
    event = OutboundEvent.objects.get(key=f"calc.batch.completed:{batch.pk}")
    assert event.type == "calc.batch.completed" and event.tenant_id == batch.tenant_id
    assert event.payload["batchId"] == batch.pk and event.payload["designations"] == 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_upload_through_the_api_imports_calculates_and_emits(shared_media, api):
    version = unique()
    upload = SimpleUploadedFile("obs.csv", GOOD.encode(), content_type="text/csv")
    response = api.post("/api/v1/catalog/imports",
                        {"tenantId": "acme", "versionTag": version, "file": upload})  # fmt: skip
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["jobId"] == f"ingest-acme-observations-{version}"
    assert finish(body["jobId"]).state == "completed"
    batch = ImportBatch.objects.get(pk=body["batchId"])
    assert_pipeline_ran(batch)

    errors = api.get(f"/api/v1/catalog/imports/{batch.pk}/errors.csv")
    assert errors.status_code == 200
    lines = b"".join(errors.streaming_content).decode().splitlines()
    assert lines[0] == "line,field,message"
    assert [line.split(",")[:2] for line in lines[1:]] == [["5", "observed_at"], ["6", "magnitude"]]
    status = api.get(f"/api/v1/catalog/imports/{batch.pk}").json()
    assert (status["status"], status["rowsImported"], status["rowsFailed"]) == ("completed", 4, 2)

    # Triggered twice: the same upload again is not stored again, nor imported again ...
    again = api.post("/api/v1/catalog/imports", {"tenantId": "acme", "versionTag": version,
                     "file": SimpleUploadedFile("obs.csv", GOOD.encode())})  # fmt: skip
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["batchId"] == batch.pk
    # ... and the calculation's flow, created again, is the first one, not a run.
    parent_id = f"finish-import-acme-{batch.pk}"
    first = get_job("catalog", parent_id)
    repeat = service.start_calculation(batch)
    assert repeat.created is False and repeat.job.id == parent_id
    assert get_job("catalog", parent_id).processed_on == first.processed_on
    assert Observation.objects.filter(batch=batch).count() == 4
    assert OutboundEvent.objects.filter(key=f"calc.batch.completed:{batch.pk}").count() == 1


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path) -> Iterator[str]:
    (tmp_path / "obs.csv").write_text(GOOD)
    handler = lambda *a, **k: _Quiet(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_url_import_through_the_cli(shared_media, served, capsys):
    version = unique()
    job_id = f"ingest-globex-observations-{version}"
    call_command("jobs", "trigger", "ingest-dataset", "--param", "tenantId=globex",
                 "--param", "source=url", "--param", f"versionTag={version}",
                 "--param", f"url={served}/obs.csv", "--job-id", job_id)  # fmt: skip
    assert finish(job_id).state == "completed"
    assert_pipeline_ran(ImportBatch.objects.get(tenant_id="globex", version_tag=version))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_upload_in_the_admin(shared_media, admin_client):
    version = unique()
    response = admin_client.post("/admin/catalog/importbatch/add/", {
        "tenant_id": "initech", "dataset": "observations", "version_tag": version,
        "format": "", "file": SimpleUploadedFile("obs.csv", GOOD.encode())})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
    batch = ImportBatch.objects.get(tenant_id="initech", version_tag=version)
    assert finish(batch.job_id).state == "completed"
    assert_pipeline_ran(batch)
    csv_response = admin_client.get(f"/admin/catalog/importbatch/{batch.pk}/errors.csv")
    assert b"".join(csv_response.streaming_content).startswith(b"line,field,message\r\n5,")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_wrong_columns_fail_the_job_naming_them(shared_media, api):
    upload = SimpleUploadedFile("obs.csv", b"designation,seen,magnitude\n1P,x,5\n")
    body = api.post("/api/v1/catalog/imports",
                    {"tenantId": "acme", "versionTag": unique(), "file": upload}).json()  # fmt: skip
    with pytest.raises(JobFailed) as info:
        get_job("catalog", body["jobId"]).wait_until_finished(timeout=60)
    assert info.value.reason.startswith("DatasetError: line 1: missing columns")  # a PermanentError
    job = get_job("catalog", body["jobId"])
    assert job.state == "failed" and job.attempts_made == 1  # permanent: no retries
    assert "missing columns: observed_at" in job.failed_reason
    assert "unknown columns: 'seen'" in job.failed_reason
    batch = ImportBatch.objects.get(pk=body["batchId"])
    assert batch.status == "failed" and "observed_at" in batch.failed_reason
    assert not Observation.objects.filter(batch=batch).exists()


# --- bad requests ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_upload_over_the_limit_is_a_413_and_a_form_error(media, api, admin_client, settings):
    settings.CATALOG_MAX_UPLOAD_BYTES = 50
    big = GOOD.encode()
    response = api.post("/api/v1/catalog/imports", {"tenantId": "acme", "versionTag": "v1",
                        "file": SimpleUploadedFile("obs.csv", big)})  # fmt: skip
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload_too_large"
    form = admin_client.post("/admin/catalog/importbatch/add/", {
        "tenant_id": "acme", "dataset": "observations", "version_tag": "v1", "format": "",
        "file": SimpleUploadedFile("obs.csv", big)})  # fmt: skip
    assert form.status_code == 200 and b"over the 50 bytes limit" in form.content
    assert not ImportBatch.objects.exists()


@pytest.mark.django_db
def test_bad_requests_are_named(media, api):
    response = api.post("/api/v1/catalog/imports", {"tenantId": "a-b", "versionTag": "v1",
                        "file": SimpleUploadedFile("obs.csv", GOOD.encode())})  # fmt: skip
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "tenantId"
    response = api.post("/api/v1/catalog/imports", {"tenantId": "acme", "versionTag": "v1"},
                        content_type="application/json")  # fmt: skip
    assert response.status_code == 422 and "url" in response.json()["error"]["message"]
    assert api.get("/api/v1/catalog/imports/999999").status_code == 404
    read_only = Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(unique(), 'read')[1]}")
    assert read_only.post("/api/v1/catalog/imports", {}).status_code == 403


# --- out of attempts -----------------------------------------------------------------------


def missing_file_batch(version: str) -> ImportBatch:
    """A batch whose stored file is gone from storage: opening it is an OSError, which the
    retry policy retries (storage may come back), so the fault is a transient one."""
    return ImportBatch.objects.create(tenant_id="acme", dataset="observations",
                                      version_tag=version, source="csv",
                                      file="catalog/imports/gone.csv")  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("attempts", "status"), [(1, "failed"), (3, "running")])
def test_the_batch_fails_on_the_jobs_last_attempt_only(media, attempts, status):
    from tasks.testing import run_job

    batch = missing_file_batch(unique())
    data = {"tenant_id": "acme", "source": "csv", "version_tag": batch.version_tag,
            "batch_id": batch.pk}  # fmt: skip
    job = run_job("ingest-dataset", data, attempts=attempts)
    assert job.attempts_made == 1 and "FileNotFoundError" in job.failed_reason
    batch.refresh_from_db()
    assert batch.status == status  # running: the retry resumes it


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_import_out_of_retries_is_marked_failed_with_its_reason(shared_media):
    batch = missing_file_batch(unique())
    job = enqueue("ingest-dataset", {"tenant_id": "acme", "source": "csv",
                  "version_tag": batch.version_tag, "batch_id": batch.pk},
                  attempts=2, job_id=f"ingest-acme-observations-{batch.version_tag}")  # fmt: skip
    with pytest.raises(JobFailed):
        job.wait_until_finished(timeout=60)
    job.refresh()
    assert (job.state, job.attempts_made) == ("failed", 2)
    batch.refresh_from_db()
    assert batch.status == "failed" and batch.finished_at is not None
    assert batch.failed_reason.startswith("gave up after attempt 2 of 2: FileNotFoundError")
