"""Comets from COBS: parsing, the import against a fake COBS on 127.0.0.1, cleanup, the
schedules, the API, and the jobs run by a real worker from the API, the CLI and the admin."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import structlog
from django.core.management import call_command
from django.utils import timezone

from catalog import cobs
from catalog.cleanup import CLEANUP_KINDS, cleanup, delete_in_batches
from catalog.models import Comet
from tasks import InvalidJobData, enqueue, get_job_type, list_schedules
from tasks.testing import run_job
from tests.catalog import fake_cobs as fake

# --- parsing one object: pure -------------------------------------------------------------


@pytest.mark.pure
def test_it_reads_magnitudes_as_cobs_writes_them():
    assert cobs.parse_magnitude("14.7", "m") == 14.7
    assert cobs.parse_magnitude(" -3.1 ", "m") == -3.1
    assert cobs.parse_magnitude("", "m") is None
    assert cobs.parse_magnitude(None, "m") is None
    assert cobs.parse_magnitude(9, "m") == 9.0
    for bad in ("bright", "nan", "inf", True, [1]):
        with pytest.raises(cobs.BadObject, match="m: "):
            cobs.parse_magnitude(bad, "m")


@pytest.mark.pure
def test_it_reads_timestamps_as_utc_without_a_zone():
    at = datetime(2024, 3, 5, 10, 20, tzinfo=UTC)
    assert cobs.parse_timestamp("2024-03-05 10:20", "d") == at
    assert cobs.parse_timestamp("2024-03-05T10:20:00", "d") == at
    assert cobs.parse_timestamp("2024-03-05 12:20:00+02:00", "d") == at
    assert cobs.parse_timestamp("2024-03-05", "d") == datetime(2024, 3, 5, tzinfo=UTC)
    for empty in ("", None, "0000-00-00 00:00", "0000-00-00"):
        assert cobs.parse_timestamp(empty, "d") is None
    for bad in ("05/03/2024", "2024-13-01 00:00", 1709634000):
        with pytest.raises(cobs.BadObject, match="d: "):
            cobs.parse_timestamp(bad, "d")


@pytest.mark.pure
def test_it_parses_an_object_and_refuses_a_bad_one():
    fields = cobs.parse_comet(fake.PAGES[0][0])
    assert fields["cobs_id"] == 1670 and fields["name"] == "C/2017 K2"
    assert fields["current_magnitude"] == 14.7 and fields["component"] == ""
    assert fields["is_observed"] is True and fields["is_active"] is True
    assert cobs.parse_comet({**fake.PAGES[0][0], "id": None, "pk": 7})["cobs_id"] == 7  # 1.0
    for bad in ({**fake.PAGES[0][0], "name": ""}, {**fake.PAGES[0][0], "id": "x"},
                {**fake.PAGES[0][0], "is_active": "yes"}, "C/2017 K2"):  # fmt: skip
        with pytest.raises(cobs.BadObject):
            cobs.parse_comet(bad)


@pytest.mark.pure
def test_cur_mag_is_the_next_integer_up():
    assert [cobs.cur_mag(m) for m in (15, 12.5, 0.1, 0)] == [15, 13, 1, 0]


# --- the import, as a plain function against the fake COBS ---------------------------------


@pytest.mark.django_db
def test_it_imports_every_page(fake_cobs):
    seen = []
    result = cobs.update_comets(15, on_page=lambda page, pages: seen.append((page, pages)))
    assert result == {"pages": 3, "imported": fake.IMPORTED, "updated": 0, "unchanged": 0,
                      "skipped": fake.SKIPPED, "errors": fake.ERRORS, "deactivated": 0}  # fmt: skip
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert fake_cobs.requests == [
        {"cur-mag": "15", "is-active": "true", "page": str(n)} for n in (1, 2, 3)
    ]
    assert Comet.objects.count() == fake.IMPORTED
    neowise = Comet.objects.get(name="C/2017 K2")
    assert (neowise.cobs_id, neowise.fullname, neowise.type) == (1670, "C/2017 K2 (PANSTARRS)", "C")
    assert neowise.current_magnitude == 14.7 and neowise.perihelion_magnitude == 9.9
    assert neowise.perihelion_date == datetime(2024, 3, 5, 10, 20, tzinfo=UTC)
    assert neowise.source == "cobs" and neowise.first_seen == neowise.last_seen
    blank = Comet.objects.get(cobs_id=1900)
    assert (blank.current_magnitude, blank.peak_magnitude, blank.peak_date) == (None, None, None)
    pons = Comet.objects.get(name="12P")
    assert pons.perihelion_date == datetime(2024, 4, 21, tzinfo=UTC)
    assert pons.peak_date == datetime(2024, 4, 21, 6, 30, 15, tzinfo=UTC)
    olbers = Comet.objects.get(name="13P")
    assert olbers.perihelion_date is None
    assert olbers.peak_date == datetime(2024, 6, 30, 10, tzinfo=UTC)
    assert Comet.objects.get(name="C/2024 G3").current_magnitude == -3.1
    assert not Comet.objects.filter(cobs_id__in=[99, 2002]).exists()  # bad, too faint


@pytest.mark.django_db
def test_a_second_run_changes_nothing_and_a_changed_comet_is_updated(fake_cobs):
    cobs.update_comets(15)
    before = {c.pk: [getattr(c, f) for f in cobs.DATA_FIELDS] for c in Comet.objects.all()}
    again = cobs.update_comets(15)
    assert again == {"pages": 3, "imported": 0, "updated": 0, "unchanged": fake.IMPORTED,
                     "skipped": fake.SKIPPED, "errors": fake.ERRORS, "deactivated": 0}  # fmt: skip
    after = {c.pk: [getattr(c, f) for f in cobs.DATA_FIELDS] for c in Comet.objects.all()}
    assert after == before

    brighter = [[{**fake.PAGES[0][0], "current_mag": "13.9"}, *fake.PAGES[0][1:]], *fake.PAGES[1:]]
    fake_cobs.pages = brighter
    third = cobs.update_comets(15)
    assert (third["updated"], third["unchanged"]) == (1, fake.IMPORTED - 1)
    assert Comet.objects.get(cobs_id=1670).current_magnitude == 13.9


@pytest.mark.django_db
def test_a_complete_run_deactivates_comets_it_no_longer_lists_within_its_limit(fake_cobs):
    cobs.update_comets(15)
    faint = Comet.objects.create(name="C/2001 Q4", current_magnitude=13.5)  # beyond 10
    unknown = Comet.objects.create(name="C/2002 T7", current_magnitude=None)
    other = Comet.objects.create(name="C/2003 H1", current_magnitude=6.0, source="manual")
    # 12P (4.5) drops off COBS's active list; 13P (7.0) stays on it.
    fake_cobs.pages = [fake.PAGES[0], [o for o in fake.PAGES[1] if o["name"] != "12P"],
                       fake.PAGES[2]]  # fmt: skip
    assert cobs.update_comets(10)["deactivated"] == 1  # 12P only
    active = dict(Comet.objects.values_list("name", "is_active"))
    assert active["12P"] is False
    # Listed (249P is skipped at 10, yet named), beyond the limit, unknown, not COBS's:
    assert active["249P"] and active["13P"] and active["C/2024 G3"]
    assert (
        Comet.objects.filter(pk__in=[faint.pk, unknown.pk, other.pk], is_active=True).count() == 3
    )

    # A run that fails midway (page 3: 404) deactivates nothing, even within its limit;
    # the pages it read are stored: 12P, on page 2, is listed again, so active again.
    fake_cobs.pages = [[o for o in fake.PAGES[0] if o["name"] != "249P"], *fake.PAGES[1:]]
    original = fake_cobs.answer
    fake_cobs.answer = lambda page, hits: (
        (404, "text/html", b"") if page == 3 else original(page, hits)
    )
    try:
        with pytest.raises(cobs.CobsRefused):
            cobs.update_comets(15)
    finally:
        del fake_cobs.answer  # the class's own again
    assert Comet.objects.get(name="249P").is_active and Comet.objects.get(name="12P").is_active
    # An empty list (an outage's answer as like as not) deactivates nothing either.
    fake_cobs.pages = [[]]
    assert cobs.update_comets(15)["deactivated"] == 0
    assert Comet.objects.get(name="249P").is_active
    # A complete run at 15 covers C/2001 Q4 (13.5), which COBS does not list: inactive now.
    fake_cobs.reset()
    assert cobs.update_comets(15)["deactivated"] == 1
    assert not Comet.objects.get(pk=faint.pk).is_active
    assert Comet.objects.filter(pk__in=[unknown.pk, other.pk], is_active=True).count() == 2


@pytest.mark.django_db
def test_each_page_is_stored_before_the_next_is_fetched(fake_cobs):
    fake_cobs.pages = fake.PAGES[:1]
    assert cobs.update_comets(15)["pages"] == 1
    fake_cobs.pages = fake.PAGES
    calls = []

    def on_page(page: int, pages: int) -> None:
        calls.append(page)
        if page == 2:
            raise RuntimeError("stop after page 2")

    with pytest.raises(RuntimeError):
        cobs.update_comets(15, on_page=on_page)
    assert Comet.objects.filter(name="12P").exists()  # page 2 committed
    assert not Comet.objects.filter(name="C/2024 G3").exists()  # page 3 never fetched


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scenario", "error", "permanent", "words"),
    [
        ("flaky", cobs.CobsUnavailable, False, "HTTP 503"),
        ("gone", cobs.CobsRefused, True, "HTTP 404"),
        ("html", cobs.CobsBadAnswer, False, "not JSON (text/html)"),
    ],
)
def test_a_failed_page_says_whether_a_retry_can_help(fake_cobs, scenario, error, permanent, words):
    fake_cobs.scenario = scenario
    with pytest.raises(error, match=re.escape(words)) as caught:
        cobs.update_comets(15)
    assert caught.value.permanent is permanent


@pytest.mark.django_db
def test_a_timeout_is_worth_a_retry(fake_cobs):
    fake_cobs.scenario = "slow"
    with httpx.Client(timeout=0.2) as client, pytest.raises(cobs.CobsUnavailable, match="timed"):
        cobs.update_comets(15, client=client)


@pytest.mark.django_db
def test_json_of_another_shape_is_permanent(fake_cobs):
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=[]))
    with httpx.Client(transport=transport) as c, pytest.raises(cobs.CobsBadAnswer) as caught:
        cobs.update_comets(15, client=c)
    assert "objects" in str(caught.value)
    assert caught.value.permanent


@pytest.mark.django_db
def test_an_unknown_version_is_warned_about_once(fake_cobs, monkeypatch):
    monkeypatch.setattr(cobs, "_warned_versions", set())
    fake_cobs.version = "9.0"
    with structlog.testing.capture_logs() as logs:
        cobs.update_comets(15)
        cobs.update_comets(15)
    warnings = [e for e in logs if e["event"] == "cobs_unknown_version"]
    assert len(warnings) == 1 and warnings[0]["version"] == "9.0"
    bad = [e for e in logs if e["event"] == "cobs_object_unparsable"]
    assert len(bad) == 2 and bad[0]["id"] == 99 and "current_mag" in bad[0]["error"]


# --- the job types' declarations and validation --------------------------------------------


def test_update_comets_follows_the_projects_default_policy(settings):
    declared = get_job_type("update-comets")
    assert declared.queue == "catalog"
    assert declared.defaults.attempts == 3 == settings.JOBYARD["DEFAULT_ATTEMPTS"]
    backoff = declared.defaults.model_dump(mode="json", exclude_unset=True)["backoff"]
    assert backoff == {"type": "exponential", "delay": 5000, "factor": 5.0}
    assert get_job_type("cleanup-old-data").queue == "cleanup"


@pytest.mark.parametrize(
    ("name", "data", "field", "words"),
    [
        ("update-comets", {"maxMagnitude": -1}, "maxMagnitude", "greater than or equal to 0"),
        ("update-comets", {"maxMagnitude": "12"}, "maxMagnitude", "valid number"),
        ("cleanup-old-data", {"daysOld": -5}, "daysOld", "greater than or equal to 0"),
        ("cleanup-old-data", {"type": "planets"}, "type", "unknown kind 'planets'; kinds: all"),
        ("schedule-recurring-comets", {"pattern": "0 0 30 2 *"}, "pattern", "never fires"),
        ("schedule-recurring-comets", {"maxMagnitude": -2}, "maxMagnitude", "greater than"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(name, data, field, words):
    with pytest.raises(InvalidJobData) as caught:
        enqueue(name, data)
    assert [e["field"] for e in caught.value.errors] == [field]
    assert words in caught.value.errors[0]["message"]


# --- cleanup ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cleanup_deletes_stale_comets_in_batches():
    now = timezone.now()
    old = now - timedelta(days=100)

    def make(name: str, active: bool, seen) -> Comet:
        return Comet.objects.create(name=name, is_active=active, last_seen=seen)

    stale = [make(f"X/{n}", False, old) for n in range(5)]
    make("active-but-old", True, old)
    make("inactive-but-recent", False, now - timedelta(days=10))
    assert delete_in_batches(Comet.objects.filter(pk__in=[c.pk for c in stale[:3]]), 2) == 3
    assert cleanup(now - timedelta(days=90), ["comets"]) == {"comets": 2}
    assert sorted(Comet.objects.values_list("name", flat=True)) == [
        "active-but-old", "inactive-but-recent"
    ]  # fmt: skip
    job = run_job("cleanup-old-data", {"daysOld": 5, "type": "all"})
    assert job.state == "completed", job.failed_reason
    assert job.returnvalue["deleted"]["comets"] == 1 and job.returnvalue["daysOld"] == 5
    assert "comets" in CLEANUP_KINDS


# --- schedules ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_setup_schedules_installs_the_weekly_refresh_and_the_daily_cleanup():
    call_command("setup_schedules", stdout=io.StringIO())
    listed = {s["key"]: s for s in list_schedules()}
    weekly = listed["comets-weekly"]
    assert (weekly["jobType"], weekly["queue"], weekly["enabled"]) == (
        "update-comets",
        "catalog",
        True,
    )
    assert weekly["pattern"].startswith("0 0 * * 0")
    assert datetime.fromtimestamp(weekly["next"] / 1000, UTC).weekday() == 6  # a Sunday, 00:00 UTC
    assert datetime.fromtimestamp(weekly["next"] / 1000, UTC).astimezone(UTC).hour == 0
    assert listed["catalog-cleanup-daily"]["jobType"] == "cleanup-old-data"

    job = run_job("schedule-recurring-comets", {"pattern": "30 6 * * 1", "maxMagnitude": 12})
    assert job.state == "completed", job.failed_reason
    assert job.returnvalue == {"key": "comets-weekly", "created": False,
                               "pattern": "30 6 * * 1", "maxMagnitude": 12.0}  # fmt: skip
    weekly = {s["key"]: s for s in list_schedules()}["comets-weekly"]
    assert weekly["pattern"].startswith("30 6 * * 1")
    from django_celery_beat.models import PeriodicTask

    assert PeriodicTask.objects.get(name="comets-weekly").kwargs == '{"max_magnitude": 12.0}'


# --- the API ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_lists_comets_brightest_first_a_page_at_a_time(reader, anonymous, monkeypatch):
    from catalog.api import comets as view

    monkeypatch.setattr(view, "PAGE_SIZE", 2)
    for n, mag in enumerate([9.0, 4.5, None, 12.0, 16.0]):
        Comet.objects.create(name=f"C/{n}", current_magnitude=mag, is_active=n != 3)
    answer = reader.get("/api/v1/catalog/comets")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["count"], body["pages"], body["page"]) == (5, 3, 1)
    assert [c["name"] for c in body["comets"]] == ["C/1", "C/0"]
    body = reader.get("/api/v1/catalog/comets?maxMagnitude=12&active=true&page=2").json()
    assert (body["count"], [c["name"] for c in body["comets"]]) == (2, [])
    body = reader.get("/api/v1/catalog/comets?maxMagnitude=12&active=false").json()
    assert [c["name"] for c in body["comets"]] == ["C/3"]
    assert body["comets"][0]["currentMagnitude"] == 12.0 and body["comets"][0]["isActive"] is False
    for query, field in [("maxMagnitude=bright", "maxMagnitude"), ("maxMagnitude=nan", "maxMagnitude"),
                         ("active=maybe", "active"), ("page=0", "page"), ("page=x", "page")]:  # fmt: skip
        answer = reader.get(f"/api/v1/catalog/comets?{query}")
        assert answer.status_code == 400 and answer["Content-Type"] == "application/json"
        error = answer.json()["error"]
        assert error["code"] == "invalid_query" and error["fields"][0]["field"] == field
    assert anonymous.get("/api/v1/catalog/comets").status_code == 401
    assert reader.post("/api/v1/catalog/comets").status_code == 405


# --- on a real worker: from the API, the CLI, the admin's form ----------------------------

ALL_FIELDS = ("name", "cobs_id", "current_magnitude", "perihelion_date", "is_active")


def snapshot() -> list[tuple]:
    return list(Comet.objects.order_by("name").values_list(*ALL_FIELDS))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_api_trigger_runs_it_on_a_worker(catalog_worker, fake_cobs, api):
    answer = api.post_json(
        "/api/admin/jobs/trigger", {"jobType": "update-comets", "maxMagnitude": 15}
    )
    assert answer.status_code == 202, answer.content
    assert answer.json()["queue"] == "catalog"
    from tasks import get_job

    job = get_job("catalog", answer.json()["jobId"])
    result = job.wait_until_finished(timeout=60)
    assert result == {"pages": 3, "imported": fake.IMPORTED, "updated": 0, "unchanged": 0,
                      "skipped": fake.SKIPPED, "errors": fake.ERRORS, "deactivated": 0}  # fmt: skip
    job.refresh()
    assert (job.progress, job.attempts_made) == (100, 1)
    assert job.worker.startswith(catalog_worker.name)
    assert Comet.objects.count() == fake.IMPORTED  # in PostgreSQL, written by the worker
    before = snapshot()

    # The CLI, as docs/api.md writes it: the same job again changes nothing.
    out = io.StringIO()
    call_command("jobs", "trigger", "update-comets", "--param", "maxMagnitude=12", "--wait",
                 "--json", stdout=out, stderr=io.StringIO())  # fmt: skip
    ran = json.loads(out.getvalue())
    assert (ran["queue"], ran["state"]) == ("catalog", "completed")
    # At 12: 14.7 and 15.4 are skipped, the rest (the unknown magnitude too) unchanged.
    assert ran["result"] == {"pages": 3, "imported": 0, "updated": 0, "unchanged": 5,
                             "skipped": 2, "errors": 1, "deactivated": 0}  # fmt: skip
    assert fake_cobs.requests[-1]["cur-mag"] == "12"
    assert snapshot() == before


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_admin_form_triggers_it(catalog_worker, fake_cobs, admin_client):
    from tasks import get_job

    response = admin_client.post("/admin/trigger/", {
        "job_type": "update-comets", "data": '{"maxMagnitude": 15}', "job_id": "from-the-admin",
    })  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    job = get_job("catalog", "from-the-admin")
    assert job.wait_until_finished(timeout=60)["imported"] == fake.IMPORTED
    assert Comet.objects.filter(name="12P", current_magnitude=4.5).exists()
    page = admin_client.get("/admin/catalog/comet/?q=Pons&is_active__exact=1&magnitude=naked-eye")
    assert page.status_code == 200 and "12P" in page.content.decode()
    assert "13P" not in page.content.decode()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_503_is_retried_a_404_fails_at_once_non_json_is_a_clear_error(catalog_worker, fake_cobs):
    from tasks import JobFailed

    fake_cobs.scenario = "flaky"
    job = enqueue("update-comets", {"maxMagnitude": 15})
    assert job.wait_until_finished(timeout=60)["imported"] == fake.IMPORTED
    assert job.refresh().attempts_made == 2  # the 503, then the back-off (scaled) and success

    fake_cobs.reset("gone")
    job = enqueue("update-comets", {})
    with pytest.raises(JobFailed) as failed:
        job.wait_until_finished(timeout=60)
    job.refresh()
    assert job.attempts_made == 1 and len(fake_cobs.requests) == 1
    assert failed.value.reason.startswith("PermanentError: COBS page 1: HTTP 404")

    fake_cobs.reset("html")
    job = enqueue("update-comets", {})
    with pytest.raises(JobFailed) as failed:
        job.wait_until_finished(timeout=60)
    assert job.refresh().attempts_made == 3  # retried by the policy, then failed
    assert "the answer is not JSON (text/html)" in failed.value.reason
