"""Reports: the report types and writers as plain functions, bad input refused naming the
field, cleanup, and `generate-report` on a real worker from the API, the CLI and the admin,
with the file downloaded over the API (owner scoping, auth) and from the admin."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from catalog.cleanup import CLEANUP_KINDS, cleanup
from catalog.models import Comet, OutboundEvent, Report
from catalog.reports import service, writers
from tasks import InvalidJobData, enqueue, get_job
from tasks.api.models import ApiToken
from tasks.models import JobRecord
from tasks.testing import run_job
from tests.api.conftest import ApiClient, assert_error

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def comets() -> None:
    Comet.objects.bulk_create([
        Comet(name="C/2023 A3", type="C", current_magnitude=3.1, is_active=True),
        Comet(name="12P", type="P", current_magnitude=4.5, is_active=True),
        Comet(name="13P", type="P", current_magnitude=11.0, is_active=False),
        Comet(name="29P", type="P", current_magnitude=14.2, is_active=True),
        Comet(name="C/2099 Z1", type="C", current_magnitude=None, is_active=True),
    ])  # fmt: skip


def archive() -> None:
    """Six archived jobs on 2024-05-01 and 02, one on 04-30 (outside a May range)."""
    rows = []
    for i, (queue, name, state, day, ms) in enumerate([
        ("catalog", "update-comets", "completed", 1, 1200),
        ("catalog", "update-comets", "completed", 1, 800),
        ("catalog", "update-comets", "failed", 2, 100),
        ("email", "send-email", "completed", 2, 50),
        ("email", "send-email", "waiting", 2, None),
        ("reports", "generate-report", "completed", 2, 3000),
        ("catalog", "update-comets", "completed", -1, 10),
    ]):  # fmt: skip
        created = NOW + timedelta(days=day - 1, minutes=i)
        rows.append(JobRecord(queue=queue, job_id=f"j{i}", name=name, state=state,
                              created_at=created, processed_on=created if ms else None,
                              finished_on=created + timedelta(milliseconds=ms) if ms else None,
                              attempts_made=1))  # fmt: skip
    JobRecord.objects.bulk_create(rows)


def pages(pdf: bytes) -> int:
    """The page count a PDF's page tree declares."""
    assert pdf.startswith(b"%PDF")
    return int(re.search(rb"/Type /Pages[^>]*?/Count (\d+)|/Count (\d+)[^>]*?/Type /Pages", pdf)
               .group(1) or 0) or int(re.search(rb"/Count (\d+)", pdf).group(1))  # fmt: skip


def read_csv(report: Report) -> list[dict[str, str]]:
    with default_storage.open(report.file.name, "rb") as fh:
        return list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")))


# --- the work, as plain functions ----------------------------------------------------------


@pytest.mark.django_db
def test_a_comet_catalog_csv_is_filtered_and_stored_with_its_event():
    comets()
    seen = []
    result = service.generate("r-1", "comet-catalog", "csv",
                              {"maxMagnitude": 12, "active": True}, None, seen.append)  # fmt: skip
    report = Report.objects.get(job_id="r-1")
    assert result == {"reportId": report.pk, "rows": 2, "size": report.size,
                      "file": f"/api/v1/reports/{report.pk}/file", "truncated": False}  # fmt: skip
    assert (report.status, report.rows, report.format) == ("completed", 2, "csv")
    rows = read_csv(report)
    assert [r["name"] for r in rows] == ["C/2023 A3", "12P"]  # brightest first
    assert rows[0]["current_magnitude"] == "3.1" and rows[0]["is_active"] == "True"
    assert report.size == default_storage.size(report.file.name)
    assert seen[-1] == 100
    event = OutboundEvent.objects.get(key=f"report.ready:{report.pk}")
    assert event.type == "report.ready" and event.payload["rows"] == 2

    by_type = service.generate("r-2", "comet-catalog", "csv", {"type": "P"}, None)
    assert by_type["rows"] == 3


@pytest.mark.django_db
def test_a_rerun_of_the_same_job_rewrites_its_row_and_replaces_its_file():
    comets()
    first = service.generate("r-again", "comet-catalog", "csv", {}, None)
    old = Report.objects.get(pk=first["reportId"]).file.name
    Comet.objects.filter(name="29P").delete()
    again = service.generate("r-again", "comet-catalog", "csv", {}, None)
    report = Report.objects.get(job_id="r-again")
    assert again["reportId"] == first["reportId"] and report.rows == 4
    assert not default_storage.exists(old) or old == report.file.name
    assert OutboundEvent.objects.filter(key=f"report.ready:{report.pk}").count() == 1


@pytest.mark.django_db
def test_job_activity_sums_the_archive_per_queue_and_job_type_over_the_range():
    archive()
    result = service.generate("r-act", "job-activity", "csv",
                              {"start": "2024-05-01", "end": "2024-05-02"}, None)  # fmt: skip
    rows = read_csv(Report.objects.get(pk=result["reportId"]))
    summary = {(r["queue"], r["job_type"]): r for r in rows}
    assert set(summary) == {("catalog", "update-comets"), ("email", "send-email"),
                            ("reports", "generate-report")}  # fmt: skip
    comets_row = summary["catalog", "update-comets"]
    assert (comets_row["jobs"], comets_row["completed"], comets_row["failed"]) == ("3", "2", "1")
    assert (comets_row["mean_duration_ms"], comets_row["max_duration_ms"]) == ("700", "1200")
    assert summary["email", "send-email"]["other"] == "1"

    detail = service.generate("r-det", "job-activity", "csv",
                              {"start": "2024-05-02", "end": "2024-05-02", "queue": "email",
                               "detail": True}, None)  # fmt: skip
    rows = read_csv(Report.objects.get(pk=detail["reportId"]))
    assert [(r["job_id"], r["state"], r["duration_ms"]) for r in rows] == [
        ("j3", "completed", "50"), ("j4", "waiting", "")]  # fmt: skip


@pytest.mark.django_db
def test_a_pdf_has_pages_and_a_cap(settings):
    comets()
    settings.CATALOG_REPORT_PDF_MAX_ROWS = 3
    result = service.generate("r-pdf", "comet-catalog", "pdf", {}, None)
    report = Report.objects.get(pk=result["reportId"])
    with default_storage.open(report.file.name, "rb") as fh:
        data = fh.read()
    assert pages(data) == 1
    assert result["truncated"] is True and report.rows == 3


def test_the_pdf_writer_breaks_pages(tmp_path):
    path = str(tmp_path / "big.pdf")
    written, truncated = writers.write_pdf(path, "T", "s", ["a", "b"],
                                           ([i, "x"] for i in range(200)))  # fmt: skip
    assert (written, truncated) == (200, False)
    assert pages(Path(path).read_bytes()) >= 4  # 200 rows, about 45 a page


def test_the_csv_writer_reports_progress_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(writers, "PROGRESS_EVERY", 10)
    seen = []
    path = str(tmp_path / "r.csv")
    assert writers.write_csv(path, ["n"], ([i] for i in range(25)), seen.append) == 25
    assert seen == [10, 20, 25]
    assert Path(path).read_text().splitlines()[:2] == ["n", "0"]


# --- bad input, refused before a job is made -----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("data", "field", "words"), [
    ({"reportType": "nope", "format": "csv"}, "reportType", "comet-catalog"),
    ({"reportType": "comet-catalog", "format": "xlsx"}, "format", "csv"),
    ({"reportType": "job-activity", "format": "csv",
      "params": {"start": "2024-05-02", "end": "2024-05-01"}}, "params", "params.end: end"),
    ({"reportType": "job-activity", "format": "csv", "params": {"start": "2024-05-02"}},
     "params", "params.end"),
    ({"reportType": "comet-catalog", "format": "csv", "params": {"maxMag": 3}}, "params",
     "params.maxMag"),
])  # fmt: skip
def test_bad_input_is_refused_naming_the_field(data, field, words, api):
    with pytest.raises(InvalidJobData) as caught:
        enqueue("generate-report", data)
    assert caught.value.errors[0]["field"] == field
    assert words in caught.value.errors[0]["message"]
    answer = api.post_json("/api/admin/jobs/trigger", {"jobType": "generate-report", **data})
    error = assert_error(answer, 422)
    assert field in json.dumps(error)


@pytest.mark.django_db
def test_an_unknown_user_fails_at_once():
    job = run_job("generate-report", {"reportType": "comet-catalog", "format": "csv",
                                      "userId": 999_999})  # fmt: skip
    assert job.state == "failed" and job.attempts_made == 1
    assert "userId: no user 999999" in job.failed_reason


# --- cleanup -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cleanup_deletes_old_reports_and_their_files():
    comets()
    old = Report.objects.get(
        pk=service.generate("r-old", "comet-catalog", "csv", {}, None)["reportId"]
    )
    new = Report.objects.get(
        pk=service.generate("r-new", "comet-catalog", "csv", {}, None)["reportId"]
    )
    Report.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    assert "reports" in CLEANUP_KINDS
    assert cleanup(timezone.now() - timedelta(days=30), ["reports"]) == {"reports": 1}
    assert not default_storage.exists(old.file.name) and default_storage.exists(new.file.name)
    assert list(Report.objects.values_list("job_id", flat=True)) == ["r-new"]
    job = run_job("cleanup-old-data", {"daysOld": 0, "type": "reports"})
    assert job.returnvalue["deleted"] == {"reports": 1}
    assert not default_storage.exists(new.file.name)


# --- on a real worker: the API, the CLI, the admin; downloads --------------------------------


def owner_token(user: User, scope: str = "read") -> ApiClient:
    _, raw = ApiToken.issue(f"t-{uuid.uuid4().hex[:8]}", scope, user=user)
    return ApiClient(raw)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_api_trigger_runs_it_and_only_its_owner_or_staff_downloads_it(worker, api, anonymous,
                                                                          admin_client):  # fmt: skip
    comets()
    ada = User.objects.create_user("ada")
    bob = User.objects.create_user("bob")
    answer = api.post_json("/api/admin/jobs/trigger", {
        "jobType": "generate-report", "reportType": "comet-catalog", "format": "csv",
        "params": {"maxMagnitude": 12}, "userId": ada.pk})  # fmt: skip
    assert answer.status_code == 202, answer.content
    assert answer.json()["queue"] == "reports"
    job = get_job("reports", answer.json()["jobId"])
    result = job.wait_until_finished(timeout=60)
    job.refresh()
    assert job.worker.startswith(worker.name) and job.progress == 100
    report = Report.objects.get(job_id=job.id)  # in PostgreSQL, written by the worker
    assert (report.user_id, report.rows, report.status) == (ada.pk, 3, "completed")
    assert [r["name"] for r in read_csv(report)] == ["C/2023 A3", "12P", "13P"]
    assert OutboundEvent.objects.get(type="report.ready").payload["userId"] == ada.pk

    url = f"/api/v1/reports/{report.pk}"
    mine = owner_token(ada)
    meta = mine.get(url)
    assert meta.status_code == 200, meta.content
    assert meta.json() | {"createdAt": 0, "finishedAt": 0} == {
        "id": report.pk, "reportType": "comet-catalog", "format": "csv",
        "params": {"maxMagnitude": 12.0}, "userId": ada.pk, "status": "completed", "rows": 3,
        "size": report.size, "jobId": job.id, "failedReason": None, "createdAt": 0,
        "finishedAt": 0, "file": f"{url}/file"}  # fmt: skip
    assert result["file"] == f"{url}/file"
    download = mine.get(f"{url}/file")
    assert download.status_code == 200 and download["Content-Type"] == "text/csv"
    body = b"".join(download.streaming_content).decode()
    assert body.splitlines()[0].startswith("name,fullname,type,current_magnitude")
    assert len(body.splitlines()) == 4

    assert_error(anonymous.get(f"{url}/file"), 401)
    assert_error(anonymous.get(url), 401)
    assert_error(owner_token(bob).get(f"{url}/file"), 404, "report_not_found")
    assert_error(owner_token(bob).get(url), 404, "report_not_found")
    assert_error(api.get(url), 404, "report_not_found")  # a token without an owner
    staff = User.objects.create_user("sue", is_staff=True)
    assert owner_token(staff).get(f"{url}/file").status_code == 200
    assert admin_client.get(f"{url}/file").status_code == 200  # a staff session
    assert_error(mine.get("/api/v1/reports/999999"), 404, "report_not_found")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_cli_triggers_a_pdf(worker):
    comets()
    out = io.StringIO()
    call_command("jobs", "trigger", "generate-report", "--param", "reportType=comet-catalog",
                 "--param", "format=pdf", "--param", 'params={"type": "P"}', "--wait",
                 "--json", stdout=out, stderr=io.StringIO())  # fmt: skip
    ran = json.loads(out.getvalue())
    assert (ran["queue"], ran["state"]) == ("reports", "completed"), ran
    report = Report.objects.get(pk=ran["result"]["reportId"])
    assert (report.format, report.rows) == ("pdf", 3)
    with default_storage.open(report.file.name, "rb") as fh:
        data = fh.read()
    assert pages(data) >= 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_admin_form_triggers_job_activity_and_the_admin_downloads_it(worker, admin_client):
    archive()
    response = admin_client.post("/admin/trigger/", {
        "job_type": "generate-report", "job_id": "report-from-the-admin",
        "data": json.dumps({"reportType": "job-activity", "format": "csv",
                            "params": {"start": "2024-05-01", "end": "2024-05-02"}}),
    })  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    job = get_job("reports", "report-from-the-admin")
    assert job.wait_until_finished(timeout=60)["rows"] == 3
    report = Report.objects.get(job_id="report-from-the-admin")
    page = admin_client.get("/admin/catalog/report/")
    link = f"/admin/catalog/report/{report.pk}/download"
    assert page.status_code == 200 and link in page.content.decode()
    download = admin_client.get(link)
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"queue,job_type,jobs")
