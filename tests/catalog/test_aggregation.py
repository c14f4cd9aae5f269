"""The daily aggregation: archive rows seeded in PostgreSQL, aggregated per day, queue and
job type (counts and percentiles against values computed here), idempotent per day; the
job from the trigger API, its own endpoint, the CLI and the admin form on a real worker;
bad ranges refused naming the field; the schedule; the dashboard's 30-day section."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from catalog.aggregation.daily import (
    MAX_RANGE_DAYS,
    InvalidRange,
    aggregate_day,
    days_to_aggregate,
    yesterday,
)
from catalog.models import DailyJobStat
from tasks import InvalidJobData, archive_daily_stats, enqueue, get_job, list_schedules
from tasks.models import JobAttempt, JobRecord
from tasks.testing import run_job

DAY = date(2024, 3, 10)
MIDNIGHT = datetime(2024, 3, 10, tzinfo=UTC)
BACKOFF = timedelta(seconds=5)


@dataclass
class Spec:
    """One archived job: its wait before the first attempt and each attempt's duration."""

    queue: str
    name: str
    state: str
    wait_ms: int
    durations: list[int]
    #: The archive holds no attempt rows for it (archived from the registry after a gap).
    no_attempts: bool = False
    at: datetime = MIDNIGHT + timedelta(hours=1)
    attempts: list[tuple[datetime, datetime]] = field(default_factory=list)

    def timeline(self) -> tuple[datetime, datetime, datetime]:
        """(created, last start, finished), filling `attempts`."""
        start = self.at + timedelta(milliseconds=self.wait_ms)
        self.attempts = []
        for ms in self.durations:
            end = start + timedelta(milliseconds=ms)
            self.attempts.append((start, end))
            start = end + BACKOFF
        return self.at, self.attempts[-1][0], self.attempts[-1][1]

    # What the aggregation must find for it.
    def processing(self) -> list[int]:
        return self.durations[-1:] if self.no_attempts else self.durations

    def wait(self) -> float:
        if self.no_attempts:  # enqueue to the last start: all the archive knows
            created, last_start, _ = self.timeline()
            return (last_start - created).total_seconds() * 1000
        return self.wait_ms


SPECS = [
    Spec("reports", "agg-a", "completed", 100, [200]),
    Spec("reports", "agg-a", "completed", 250, [300], at=MIDNIGHT + timedelta(hours=3)),
    Spec("reports", "agg-a", "completed", 400, [500, 800]),  # retried once
    Spec("reports", "agg-a", "failed", 1000, [50, 60, 70], at=MIDNIGHT + timedelta(hours=23)),
    Spec("reports", "agg-b", "completed", 3000, [1200]),
    Spec("reports", "agg-b", "completed", 20, [40, 900], no_attempts=True),
    Spec("default", "agg-c", "failed", 5, [10, 20]),
    Spec("default", "agg-c", "completed", 15, [30]),
]
#: Archived jobs the day does not count: finished the day before or after (midnight
#: belongs to the next day), cancelled, still active.
OTHERS = [
    Spec("reports", "agg-a", "completed", 1, [1], at=MIDNIGHT - timedelta(minutes=1)),
    Spec("reports", "agg-a", "completed", 0, [1000], at=MIDNIGHT + timedelta(days=1, seconds=-1)),
    Spec("reports", "agg-a", "cancelled", 1, [1]),
]


def archive(specs: list[Spec], prefix: str = "j") -> None:
    for n, spec in enumerate(specs):
        created, last_start, finished = spec.timeline()
        record = JobRecord.objects.create(
            queue=spec.queue, job_id=f"{prefix}{n}", name=spec.name, state=spec.state,
            created_at=created, processed_on=last_start, finished_on=finished,
            attempts_made=len(spec.durations),
        )  # fmt: skip
        if spec.no_attempts:
            continue
        for number, (start, end) in enumerate(spec.attempts, 1):
            last = number == len(spec.attempts)
            outcome = (
                ("completed" if spec.state == "completed" else "failed") if last else "retrying"
            )
            JobAttempt.objects.create(job=record, number=number, started_at=start,
                                      finished_at=end, outcome=outcome, event_id=f"{n}-{number}")  # fmt: skip
    # Still running: no finish, no count.
    JobRecord.objects.create(queue="reports", job_id=f"{prefix}-active", name="agg-a",
                             state="active", created_at=MIDNIGHT, processed_on=MIDNIGHT)  # fmt: skip


def percentile(values: list[float], p: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def expected(specs: list[Spec]) -> dict[tuple[str, str], dict]:
    groups: dict[tuple[str, str], list[Spec]] = {}
    for spec in specs:
        groups.setdefault((spec.queue, spec.name), []).append(spec)
        groups.setdefault((spec.queue, "*"), []).append(spec)
    result = {}
    for key, members in groups.items():
        processing = [ms for s in members for ms in s.processing()]
        waits = [s.wait() for s in members]
        result[key] = {
            "processed": sum(s.state == "completed" for s in members),
            "failed": sum(s.state == "failed" for s in members),
            "retried": sum(len(s.durations) - 1 for s in members),
            "processing_p50_ms": percentile(processing, 0.5),
            "processing_p95_ms": percentile(processing, 0.95),
            "wait_p50_ms": percentile(waits, 0.5),
            "wait_p95_ms": percentile(waits, 0.95),
        }
    return result


def stored(day: date = DAY) -> dict[tuple[str, str], dict]:
    fields = ("processed", "failed", "retried", "processing_p50_ms", "processing_p95_ms",
              "wait_p50_ms", "wait_p95_ms")  # fmt: skip
    return {
        (row["queue"], row["job_type"]): {f: row[f] for f in fields}
        for row in DailyJobStat.objects.filter(day=day).values("queue", "job_type", *fields)
    }


def assert_matches(found: dict, wanted: dict) -> None:
    assert sorted(found) == sorted(wanted)
    for key, numbers in wanted.items():
        assert found[key] == pytest.approx(numbers), key


# --- the days a request names: pure -------------------------------------------------------


@pytest.mark.pure
def test_daily_is_yesterday_in_utc_and_a_range_is_every_day_of_it():
    late = datetime(2024, 3, 11, 0, 30, tzinfo=UTC)
    assert yesterday(late) == DAY
    assert days_to_aggregate("daily", now=late) == [DAY]
    assert days_to_aggregate("range", date(2024, 2, 28), date(2024, 3, 1)) == [
        date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1)]  # fmt: skip
    assert days_to_aggregate("range", DAY, DAY) == [DAY]
    assert len(days_to_aggregate("range", date(2024, 1, 1), date(2024, 12, 31))) == MAX_RANGE_DAYS


@pytest.mark.pure
@pytest.mark.parametrize(
    ("args", "field", "words"),
    [
        (("range", DAY, DAY - timedelta(days=1)), "endDate", "on or after startDate (2024-03-10)"),
        (("range", date(2024, 1, 1), date(2025, 1, 1)), "endDate", "367 days; at most 366"),
        (("range", None, DAY), "startDate", "required when type is range"),
        (("range", DAY, None), "endDate", "required when type is range"),
        (("daily", DAY, None), "startDate", "only with type range"),
    ],
)
def test_a_bad_range_names_its_field(args, field, words):
    with pytest.raises(InvalidRange) as caught:
        days_to_aggregate(*args)
    assert caught.value.field == field and words in caught.value.message


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"type": "range", "startDate": "2024-03-10", "endDate": "2024-03-09"}, "endDate",
         "must be on or after startDate"),
        ({"type": "range", "startDate": "2024-13-01", "endDate": "2024-03-09"}, "startDate",
         "valid date"),
        ({"type": "range", "startDate": "2024-03-01", "endDate": "10 March"}, "endDate",
         "valid date"),
        ({"type": "range", "startDate": "2023-01-01", "endDate": "2024-03-09"}, "endDate",
         "at most 366"),
        ({"type": "range", "endDate": "2024-03-09"}, "startDate", "required when type is range"),
        ({"type": "daily", "startDate": "2024-03-09"}, "startDate", "only with type range"),
        ({"type": "weekly"}, "type", "'daily' or 'range'"),
    ],
)  # fmt: skip
def test_enqueue_refuses_bad_input_naming_the_field(data, field, words):
    with pytest.raises(InvalidJobData) as caught:
        enqueue("aggregate-daily", data)
    assert [e["field"] for e in caught.value.errors] == [field]
    assert words in caught.value.errors[0]["message"]


# --- the aggregation against PostgreSQL ---------------------------------------------------


@pytest.mark.django_db
def test_one_query_gives_counts_and_percentiles_per_queue_and_type(django_assert_num_queries):
    archive(SPECS + OTHERS)
    with django_assert_num_queries(1):
        rows = archive_daily_stats(DAY)
    found = {(r["queue"], r["job_type"] or "*"): r for r in rows}
    assert_matches(
        {
            k: {f: v for f, v in r.items() if f not in ("queue", "job_type")}
            for k, r in found.items()
        },
        expected(SPECS),
    )
    # Spot checks, by hand: agg-a's attempts 200, 300, 500, 800, 50, 60, 70.
    assert found[("reports", "agg-a")]["processing_p50_ms"] == pytest.approx(200)
    assert found[("reports", "agg-a")]["retried"] == 3  # 1 + 2
    assert found[("reports", "agg-b")]["retried"] == 1  # from attempts_made: no attempt rows
    assert archive_daily_stats(DAY + timedelta(days=5)) == []


@pytest.mark.django_db
def test_a_day_is_stored_and_rerunning_it_replaces_it():
    archive(SPECS + OTHERS)
    DailyJobStat.objects.create(day=DAY + timedelta(days=1), queue="reports", job_type="*",
                                processed=99)  # another day: untouched  # fmt: skip
    DailyJobStat.objects.create(day=DAY, queue="webhooks", job_type="gone", processed=7)
    assert aggregate_day(DAY) == 5  # agg-a, agg-b, reports *, agg-c, default *
    assert_matches(stored(), expected(SPECS))

    # The archive changes (a late job of that day is archived): the day is redone, not added.
    late = [Spec("reports", "agg-d", "completed", 10, [10], at=MIDNIGHT + timedelta(hours=5))]
    archive(late, prefix="late")
    assert aggregate_day(DAY) == 6
    assert_matches(stored(), expected(SPECS + late))
    assert DailyJobStat.objects.get(day=DAY + timedelta(days=1)).processed == 99
    assert aggregate_day(DAY) == 6 and DailyJobStat.objects.filter(day=DAY).count() == 6


@pytest.mark.django_db
def test_daily_aggregates_yesterday_in_process():
    day = yesterday()
    at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    archive([Spec("email", "agg-e", "completed", 100, [100], at=at)], prefix="y")
    job = run_job("aggregate-daily", {"type": "daily"})
    assert job.state == "completed", job.failed_reason
    assert job.returnvalue == {"type": "daily", "days": 1, "rows": 2,
                               "startDate": day.isoformat(), "endDate": day.isoformat()}  # fmt: skip
    assert job.progress == 100
    assert DailyJobStat.objects.get(day=day, queue="email", job_type="agg-e").processed == 1


@pytest.mark.django_db
def test_setup_schedules_installs_the_nightly_run():
    call_command("setup_schedules", stdout=io.StringIO())
    nightly = {s["key"]: s for s in list_schedules()}["jobs-aggregate-daily"]
    assert (nightly["jobType"], nightly["queue"], nightly["enabled"]) == (
        "aggregate-daily", "reports", True)  # fmt: skip
    assert nightly["pattern"].startswith("0 1 * * *")
    upcoming = datetime.fromtimestamp(nightly["next"] / 1000, UTC).astimezone(UTC)
    assert (upcoming.hour, upcoming.minute) == (1, 0)
    from django_celery_beat.models import PeriodicTask

    assert (
        json.loads(PeriodicTask.objects.get(name="jobs-aggregate-daily").kwargs)["type"] == "daily"
    )


# --- the API ------------------------------------------------------------------------------

URL = "/api/admin/jobs/aggregate-daily"


@pytest.mark.django_db
def test_the_endpoint_refuses_bad_ranges_and_wants_a_write_token(api, reader, anonymous):
    from tests.api.conftest import assert_error

    for body, name in [
        ({"type": "range", "startDate": "2024-03-10", "endDate": "2024-03-01"}, "endDate"),
        ({"type": "range", "startDate": "yesterday", "endDate": "2024-03-01"}, "startDate"),
        ({"type": "range", "startDate": "2020-01-01", "endDate": "2024-03-01"}, "endDate"),
    ]:
        error = assert_error(api.post_json(URL, body), 422, "invalid_job_data")
        assert [f["field"] for f in error["fields"]] == [name]
    assert_error(api.post(URL, "not json", content_type="application/json"), 400)
    assert_error(reader.post_json(URL, {"type": "daily"}), 403)
    assert_error(anonymous.get(URL), 401)


@pytest.mark.django_db
def test_get_has_the_seeds_shape(reader):
    call_command("setup_schedules", stdout=io.StringIO())
    run_job(
        "aggregate-daily", {"type": "range", "startDate": "2024-03-10", "endDate": "2024-03-10"}
    )
    answer = reader.get(URL)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert set(body) == {"queue", "counts", "recent", "scheduled"}
    assert body["queue"] == "reports"
    assert set(body["counts"]) == {"waiting", "active", "completed", "failed", "delayed", "paused"}
    assert set(body["recent"]) == {"completed", "failed", "active"}
    assert [j["name"] for j in body["recent"]["completed"]] == ["aggregate-daily"]
    assert body["recent"]["completed"][0]["returnvalue"]["days"] == 1
    [nightly] = body["scheduled"]
    assert nightly["key"] == "jobs-aggregate-daily" and nightly["pattern"].startswith("0 1 * * *")
    assert datetime.fromtimestamp(nightly["next"] / 1000, UTC).astimezone(UTC).hour == 1


# --- on a real worker: the endpoint, the trigger API, the CLI, the admin's form -----------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_api_the_cli_and_the_admin_run_it_on_a_worker(worker, api, admin_client):
    archive(SPECS + OTHERS)
    answer = api.post_json(
        URL, {"type": "range", "startDate": "2024-03-09", "endDate": "2024-03-11"}
    )
    assert answer.status_code == 202, answer.content
    job = get_job("reports", answer.json()["jobId"])
    result = job.wait_until_finished(timeout=60)
    assert result == {"type": "range", "days": 3, "rows": 9,
                      "startDate": "2024-03-09", "endDate": "2024-03-11"}  # fmt: skip
    assert job.refresh().worker.startswith(worker.name)
    assert_matches(stored(), expected(SPECS))  # written by the worker, in PostgreSQL
    # Finished at 23:59 the day before, and at midnight (the next day's first instant).
    assert stored(DAY - timedelta(days=1))[("reports", "agg-a")]["processed"] == 1
    assert stored(DAY + timedelta(days=1))[("reports", "*")]["processing_p95_ms"] == 1000

    # The trigger API: the same range again replaces the days, nothing is added.
    DailyJobStat.objects.filter(day=DAY).update(processed=0)
    answer = api.post_json("/api/admin/jobs/trigger", {"jobType": "aggregate-daily", "type": "range",
                           "startDate": "2024-03-10", "endDate": "2024-03-10"})  # fmt: skip
    assert answer.status_code == 202, answer.content
    assert answer.json()["queue"] == "reports"
    get_job("reports", answer.json()["jobId"]).wait_until_finished(timeout=60)
    assert_matches(stored(), expected(SPECS))
    assert DailyJobStat.objects.count() == 5 + 2 + 2  # 10th, 9th, 11th

    # The CLI.
    DailyJobStat.objects.all().delete()
    out = io.StringIO()
    call_command("jobs", "trigger", "aggregate-daily", "--param", "type=range",
                 "--param", "startDate=2024-03-10", "--param", "endDate=2024-03-10",
                 "--wait", "--json", stdout=out, stderr=io.StringIO())  # fmt: skip
    ran = json.loads(out.getvalue())
    assert (ran["queue"], ran["state"], ran["result"]["rows"]) == ("reports", "completed", 5)
    assert_matches(stored(), expected(SPECS))
    with pytest.raises(CommandError) as caught:
        call_command("jobs", "trigger", "aggregate-daily", "--param", "type=range",
                     "--param", "startDate=2024-03-10", "--param", "endDate=2024-03-01",
                     stdout=io.StringIO(), stderr=io.StringIO())  # fmt: skip
    assert caught.value.returncode == 2 and "endDate" in str(caught.value)

    # The admin's trigger form.
    DailyJobStat.objects.all().delete()
    response = admin_client.post("/admin/trigger/", {
        "job_type": "aggregate-daily", "job_id": "agg-from-the-admin",
        "data": '{"type": "range", "startDate": "2024-03-10", "endDate": "2024-03-10"}',
    })  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    get_job("reports", "agg-from-the-admin").wait_until_finished(timeout=60)
    assert_matches(stored(), expected(SPECS))
    response = admin_client.post("/admin/trigger/", {
        "job_type": "aggregate-daily",
        "data": '{"type": "range", "startDate": "2024-03-10", "endDate": "2022-03-10"}',
    })  # fmt: skip
    assert response.status_code == 200
    assert "endDate: must be on or after startDate" in response.content.decode()


# --- the dashboard ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_dashboard_shows_30_days_per_queue(admin_client):
    last = yesterday()
    for back, (done, failed, p95) in enumerate([(40, 2, 950.0), (30, 0, 120.5), (12, 7, 3000.0)]):
        DailyJobStat.objects.create(day=last - timedelta(days=back), queue="reports",
                                    job_type="*", processed=done, failed=failed, retried=1,
                                    processing_p50_ms=10, processing_p95_ms=p95)  # fmt: skip
    DailyJobStat.objects.create(day=last - timedelta(days=30), queue="reports", job_type="*",
                                processed=1000)  # 31 days ago: outside  # fmt: skip
    DailyJobStat.objects.create(day=last, queue="reports", job_type="agg-a", processed=500)
    page = admin_client.get("/admin/dashboard/").content.decode()
    section = page.split('id="jy-section-30-days"')[1].split('id="jy-workers"')[0]
    assert "Last 30 days, per day" in section
    card = section.split('id="days-reports"')[1].split("</section>")[0]
    assert "reports · 82 completed · 9 failed · 3 retried · worst p95 3000 ms" in card
    assert card.count("<svg") == 2 and card.count("<title>") == 60  # 30 days, two charts
    day = (last - timedelta(days=1)).strftime("%d %b")
    assert f"{day} UTC: 30 completed, 0 failed, 1 retried" in card
    assert f"{day} UTC: 10 ms p50, 120 ms p95, — wait_p95" in card
    assert 'id="days-default"' not in section  # no rows: no card


@pytest.mark.django_db
def test_the_dashboard_says_when_there_is_nothing_yet(admin_client):
    page = admin_client.get("/admin/dashboard/").content.decode()
    assert 'id="jy-30-days-empty"' in page


@pytest.mark.django_db
def test_a_section_that_fails_shows_its_error_not_a_broken_dashboard(admin_client, monkeypatch):
    from tasks import dashboard

    def broken() -> dict:
        raise RuntimeError("no table")

    monkeypatch.setitem(dashboard.DASHBOARD_SECTIONS, "broken", dashboard.DashboardSection(
        "broken", "Broken", "catalog/dashboard_30_days.html", broken))  # fmt: skip
    page = admin_client.get("/admin/dashboard/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "This section could not be shown: RuntimeError: no table" in text
    assert 'id="jy-section-30-days"' in text  # the others are still there
