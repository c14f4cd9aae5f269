"""`cleanup-old-data`'s kinds beyond comets and reports: old finished import batches (their
rows and stored files), delivered outbox events, and daily statistics past their retention;
each asserted in PostgreSQL, one kind at a time and all together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from catalog.cleanup import CLEANUP_KINDS
from catalog.imports import cleanup as imports_cleanup
from catalog.models import (
    BatchStatistic,
    DailyJobStat,
    ImportBatch,
    ImportRowError,
    Observation,
    OutboundEvent,
)
from tasks import InvalidJobData, enqueue
from tasks.testing import run_job

NOW = timezone.now()
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=10)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


def batch(version: str, status: str, finished_at: datetime | None, rows: int = 1) -> ImportBatch:
    made = ImportBatch.objects.create(tenant_id="acme", dataset="observations",
                                      version_tag=version, source="csv", status=status,
                                      finished_at=finished_at)  # fmt: skip
    made.file.save(f"{version}.csv", ContentFile(b"designation,observed_at,magnitude\n"))
    for line in range(rows):
        Observation.objects.create(batch=made, tenant_id="acme", line=line + 2,
                                   designation="12P", observed_at=OLD, magnitude=5.0)  # fmt: skip
    ImportRowError.objects.create(batch=made, line=1, field="magnitude", message="bad")
    BatchStatistic.objects.create(batch=made, tenant_id="acme", designation="12P", count=rows,
                                  mean_magnitude=5, min_magnitude=5, max_magnitude=5,
                                  first_observed_at=OLD, last_observed_at=OLD)  # fmt: skip
    return made


def imports() -> dict[str, object]:
    made = {
        "old-completed": batch("old-completed", ImportBatch.COMPLETED, OLD, rows=5),
        "old-failed": batch("old-failed", ImportBatch.FAILED, OLD),
        "old-running": batch("old-running", ImportBatch.RUNNING, None),
        "recent-completed": batch("recent-completed", ImportBatch.COMPLETED, RECENT),
    }
    # A download refused before the import started: failed, with no finished_at.
    made["refused"] = batch("refused", ImportBatch.FAILED, None)
    ImportBatch.objects.filter(pk__in=[made["old-running"].pk, made["refused"].pk]).update(
        created_at=OLD
    )
    return made


def check_imports(made: dict[str, ImportBatch]) -> None:
    left = set(ImportBatch.objects.values_list("version_tag", flat=True))
    assert left == {"old-running", "recent-completed"}
    kept = [made["old-running"].pk, made["recent-completed"].pk]
    for model in (Observation, ImportRowError, BatchStatistic):
        assert set(model.objects.values_list("batch_id", flat=True)) == set(kept), model
    for name, one in made.items():
        assert default_storage.exists(one.file.name) == (one.pk in kept), name


def outbox() -> None:
    for key, delivered in [("old-delivered", OLD), ("recent-delivered", RECENT),
                           ("old-undelivered", None)]:  # fmt: skip
        OutboundEvent.objects.create(type="calc.batch.completed", tenant_id="acme", key=key,
                                     payload={}, delivered_at=delivered)  # fmt: skip
    OutboundEvent.objects.filter(key="old-undelivered").update(created_at=OLD - timedelta(days=400))


def check_outbox(_: object) -> None:
    left = set(OutboundEvent.objects.values_list("key", flat=True))
    assert left == {"recent-delivered", "old-undelivered"}  # undelivered: kept, however old


def daily_stats() -> None:
    today = datetime.now(UTC).date()
    for days in (401, 400, 399, 30):  # the retention (400 days) is not daysOld (30)
        DailyJobStat.objects.create(day=today - timedelta(days=days), queue="q", job_type="*")


def check_daily_stats(_: object) -> None:
    today = datetime.now(UTC).date()
    left = sorted((today - day).days for day in DailyJobStat.objects.values_list("day", flat=True))
    assert left == [30, 399, 400]


KINDS = {
    "imports": (imports, check_imports, 3),
    "outbox": (outbox, check_outbox, 1),
    "daily-stats": (daily_stats, check_daily_stats, 1),
}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_deletes_only_its_old_rows(kind, media, settings, monkeypatch):
    settings.CATALOG_DAILY_STATS_RETENTION_DAYS = 400
    monkeypatch.setattr(imports_cleanup, "BATCH_SIZE", 2)  # several DELETEs per batch's rows
    make, check, deleted = KINDS[kind]
    made = make()
    job = run_job("cleanup-old-data", {"daysOld": 30, "type": kind})
    assert job.state == "completed", job.failed_reason
    assert job.returnvalue["deleted"] == {kind: deleted}
    check(made)
    again = run_job("cleanup-old-data", {"daysOld": 30, "type": kind})
    assert again.returnvalue["deleted"] == {kind: 0}


@pytest.mark.django_db
def test_all_runs_every_kind_and_counts_each(media, settings):
    settings.CATALOG_DAILY_STATS_RETENTION_DAYS = 400
    made = {kind: make() for kind, (make, _, _) in KINDS.items()}
    job = run_job("cleanup-old-data", {"daysOld": 30})
    assert job.state == "completed", job.failed_reason
    assert job.returnvalue["deleted"] == {"comets": 0, "reports": 0, "imports": 3, "outbox": 1,
                                          "daily-stats": 1}  # fmt: skip
    for kind, (_, check, _) in KINDS.items():
        check(made[kind])


def test_a_bad_type_is_refused_naming_the_field_and_the_kinds():
    assert {"comets", "reports", "imports", "outbox", "daily-stats"} <= set(CLEANUP_KINDS)
    with pytest.raises(InvalidJobData) as refused:
        enqueue("cleanup-old-data", {"daysOld": 30, "type": "observations"})
    assert refused.value.errors[0]["field"] == "type"
    assert "kinds: all, comets, daily-stats, imports, outbox, reports" in str(refused.value)
