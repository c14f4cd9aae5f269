"""What the archive does with values PostgreSQL refuses, events it cannot apply, outages,
and events trimmed from a stream before the recorder read them (issue 10, items 4 and 5)."""

import logging

import pytest
from django.db import InterfaceError, OperationalError
from django.urls import reverse
from django.utils.timezone import now

from tasks import JobFailed, archive, enqueue
from tasks.connection import get_redis
from tasks.keys import events as events_key
from tasks.models import ArchiveError, ArchiveGap, JobRecord
from tasks.recorder import RECORDER_GROUP, record_events, recorder_lag
from tests.conftest import drain_archive

db = pytest.mark.django_db(transaction=True)


def pending(queue: str) -> int:
    return get_redis().xpending(events_key(queue), RECORDER_GROUP)["pending"]


def logged(caplog: pytest.LogCaptureFixture, event: str) -> list[dict]:
    return [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg["event"] == event]


@pytest.mark.pure
def test_storable_escapes_what_postgresql_refuses_in_strings_and_keys():
    value = {"a\x00": ["x\x00y", "lone \ud800", 1, None, {"k": "\udfff"}], "ok": "é 😀 \\u0000"}
    assert archive.storable(value) == {
        "a\\u0000": ["x\\u0000y", "lone \\ud800", 1, None, {"k": "\\udfff"}],
        "ok": "é 😀 \\u0000",  # already text: kept as it is
    }
    assert archive.storable("a\x00b") == "a\\u0000b"
    clean = {"plain": ["text", 1.5, True], "accents": "é"}
    assert archive.storable(clean) is clean  # nothing to escape: the same object, no copy
    assert archive.storable({"emoji": ["😀"]}) == {"emoji": ["😀"]}  # a pair, not refused
    assert archive.storable(7) == 7 and archive.storable(None) is None


@db
def test_nul_in_data_result_and_failure_reason_is_archived_escaped_and_the_archive_goes_on(worker):
    value = {"text": "a\x00b", "key\x00": ["\x00"]}
    echoed = enqueue("t-echo.default", {"value": value})
    failed = enqueue("t-fail", {"message": "bad\x00input"})
    assert echoed.wait_until_finished(timeout=30) == value  # the registry keeps it as it was
    with pytest.raises(JobFailed):
        failed.wait_until_finished(timeout=30)
    after = enqueue("t-echo.default", {"value": 1})
    assert after.wait_until_finished(timeout=30) == 1

    assert drain_archive() > 0
    escaped = {"text": "a\\u0000b", "key\\u0000": ["\\u0000"]}
    row = JobRecord.objects.get(job_id=echoed.id)
    assert (row.state, row.data, row.returnvalue) == ("completed", {"value": escaped}, escaped)
    row = JobRecord.objects.get(job_id=failed.id)
    assert row.state == "failed" and row.failed_reason == "PermanentError: bad\\u0000input"
    assert "bad\\u0000input" in row.stacktrace[0]
    assert [a.failed_reason for a in row.attempts.all()] == ["PermanentError: bad\\u0000input"]
    assert JobRecord.objects.get(job_id=after.id).state == "completed"
    assert not ArchiveError.objects.exists() and pending("default") == 0


@db
def test_a_bad_event_is_set_aside_as_an_archive_error_and_the_rest_archived(monkeypatch, caplog):
    # As before the escaping: PostgreSQL refuses the NUL (a real DataError, from the server).
    monkeypatch.setattr(archive, "storable", lambda value: value)
    jobs = [enqueue("t-echo.catalog", {"value": v}, delay=60_000) for v in (1, 2, "nul\x00", 4)]
    bad = jobs[2]
    with caplog.at_level(logging.ERROR, logger="jobyard.recorder"):
        assert record_events() == 4

    assert set(JobRecord.objects.values_list("job_id", flat=True)) == {
        j.id for j in jobs if j is not bad
    }
    error = ArchiveError.objects.get()
    assert (error.queue, error.job_id, error.event["event"]) == ("catalog", bad.id, "delayed")
    assert error.stream_id == error.event["id"] and error.error.startswith("DataError: ")
    assert [(e["job_id"], e["stream_id"]) for e in logged(caplog, "archive_error")] == [
        (bad.id, error.stream_id)
    ]
    assert pending("catalog") == 0 and recorder_lag()["catalog"] == 0  # acknowledged

    later = enqueue("t-echo.catalog", {"value": 5}, delay=60_000)
    assert record_events() == 1  # the recorder goes on
    assert JobRecord.objects.filter(job_id=later.id).exists()
    assert ArchiveError.objects.count() == 1


@db
@pytest.mark.parametrize("outage", [OperationalError, InterfaceError])
def test_an_outage_is_not_a_bad_event_the_batch_waits_for_postgresql(monkeypatch, outage):
    job = enqueue("t-echo.catalog", {"value": 1}, delay=60_000)

    def down(events):
        raise outage("server closed the connection unexpectedly")

    monkeypatch.setattr(archive, "apply", down)
    for _ in range(2):
        with pytest.raises(outage):
            record_events()
        assert pending("catalog") == 1  # nothing acknowledged, nothing set aside
    assert not ArchiveError.objects.exists()

    monkeypatch.undo()
    assert record_events() == 1
    assert JobRecord.objects.get(job_id=job.id).state == "delayed"
    assert pending("catalog") == 0 and not ArchiveError.objects.exists()


@db
def test_events_trimmed_unread_are_a_gap_filled_from_the_registry(worker, caplog):
    first = enqueue("t-echo.default", {"value": 0})
    first.wait_until_finished(timeout=30)
    drain_archive()  # the recorder has read everything so far; then it stops reading
    kept = [enqueue("t-echo.default", {"value": i}) for i in range(3)]
    gone = [enqueue("t-echo.default", {"value": i}, remove_on_complete=True) for i in range(2)]
    for job in kept + gone:
        job.wait_until_finished(timeout=30)
    delayed = enqueue("t-echo.default", {"value": 9}, delay=60_000)
    # Their 5 x 3 events and the delayed one's are trimmed before the recorder reads them,
    # as a capped stream does when the recorder is that far behind.
    client = get_redis()
    assert client.xlen(events_key("default")) >= 16
    client.xtrim(events_key("default"), maxlen=0, approximate=False)

    with caplog.at_level(logging.WARNING, logger="jobyard.recorder"):
        assert drain_archive() == 0  # nothing left on the stream to read
    (line,) = logged(caplog, "archive_gap")
    assert line["queue"] == "default" and line["events_lost"] == 16
    assert (line["jobs_recovered"], line["jobs_unrecoverable"]) == (4, 2)

    archived = {r.job_id: r for r in JobRecord.objects.all()}
    assert {j.id for j in [first, *kept, delayed]} == set(archived)  # gone: in neither
    assert all(archived[j.id].state == "completed" for j in kept)
    assert archived[kept[0].id].returnvalue == 0 and archived[delayed.id].state == "delayed"
    gap = ArchiveGap.objects.get()
    assert (gap.queue, gap.events_lost, gap.jobs_recovered, gap.jobs_unrecoverable) == (
        "default", 16, 4, 2,
    )  # fmt: skip

    # Counted once: the group's read counter moved past the gap, and its lag is right again.
    assert recorder_lag()["default"] == 0
    after = enqueue("t-echo.default", {"value": 10})
    after.wait_until_finished(timeout=30)
    assert drain_archive() == 3
    assert JobRecord.objects.get(job_id=after.id).state == "completed"
    assert ArchiveGap.objects.count() == 1 and len(logged(caplog, "archive_gap")) == 1


@db
def test_a_batch_pending_through_an_outage_and_trimmed_meanwhile_is_a_gap(monkeypatch, caplog):
    jobs = [enqueue("t-echo.catalog", {"value": i}, delay=60_000) for i in range(3)]

    def down(events):
        raise OperationalError("the database system is shutting down")

    monkeypatch.setattr(archive, "apply", down)
    with pytest.raises(OperationalError):
        record_events()
    assert pending("catalog") == 3
    # The outage lasts: more events come and the capped stream drops the pending ones.
    later = enqueue("t-echo.catalog", {"value": 3}, delay=60_000)
    get_redis().xtrim(events_key("catalog"), maxlen=1, approximate=False)

    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="jobyard.recorder"):
        assert drain_archive() == 1
    (line,) = logged(caplog, "archive_gap")
    assert (line["queue"], line["events_lost"], line["jobs_recovered"]) == ("catalog", 3, 4)
    assert {r.job_id for r in JobRecord.objects.all()} == {j.id for j in [*jobs, later]}
    assert pending("catalog") == 0 and recorder_lag()["catalog"] == 0


@db
def test_the_dashboard_counts_archive_errors_and_gaps(admin_client):
    dashboard = reverse("admin:jobyard_dashboard")
    assert 'id="jy-archive"' not in admin_client.get(dashboard).content.decode()
    error = ArchiveError.objects.create(
        queue="email",
        stream_id="1-0",
        job_id="j1",
        event={"event": "waiting"},
        error="DataError: no",
    )
    archive.record_gap("default", "1-0", "9-0", 120, 4, 30)
    page = admin_client.get(dashboard).content.decode()
    assert 'id="jy-archive"' in page
    assert "1 event the archive could not apply" in page
    assert "120 events trimmed from the streams before the recorder read them" in page
    assert "about 30 jobs lost" in page
    assert reverse("admin:tasks_archiveerror_changelist") in page
    assert reverse("admin:tasks_archivegap_changelist") in page

    # Their lists and an error's page, read-only.
    listed = admin_client.get(reverse("admin:tasks_archiveerror_changelist")).content.decode()
    assert "DataError: no" in listed and "j1" in listed
    page = admin_client.get(reverse("admin:tasks_archiveerror_change", args=[error.pk]))
    assert page.status_code == 200 and "&quot;waiting&quot;" in page.content.decode()
    gaps = admin_client.get(reverse("admin:tasks_archivegap_changelist")).content.decode()
    assert "120" in gaps and "9-0" in gaps


@db
def test_filling_from_the_registry_writes_only_what_the_archive_lacks_or_holds_older():
    jobs = [enqueue("t-echo.catalog", {"value": i}, delay=60_000) for i in range(3)]
    record_events()
    older, cancelled, missing = jobs
    JobRecord.objects.filter(job_id=older.id).update(state="waiting")  # an event lost since
    JobRecord.objects.filter(job_id=cancelled.id).update(state="cancelled", removed_at=now())
    JobRecord.objects.filter(job_id=missing.id).delete()

    assert archive.fill_from_registry("catalog", page=2) == 2
    assert JobRecord.objects.get(job_id=older.id).state == "delayed"
    assert JobRecord.objects.get(job_id=missing.id).state == "delayed"
    assert JobRecord.objects.get(job_id=cancelled.id).state == "cancelled"  # kept
    assert archive.fill_from_registry("catalog") == 0  # nothing older left
