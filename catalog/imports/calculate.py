"""The calculation that follows an import: per-designation statistics of one batch.

Designations are taken in pages (keyset on the designation, over the (batch, designation)
index) and each page's aggregates are upserted in its own transaction, so memory is flat in
the number of designations and a rerun rewrites the same rows. The `calc.batch.completed`
event goes to the outbox (OutboundEvent) keyed by the batch: emitted once, however many runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Avg, Count, Max, Min
from django.utils import timezone

from catalog.imports.rows import DatasetError
from catalog.models import BatchStatistic, ImportBatch, Observation, OutboundEvent

#: The event type, as webhooks subscribe to it (docs/imports.md).
BATCH_COMPLETED = "calc.batch.completed"
#: Designations aggregated and written per transaction.
PAGE = 1000
_STAT_FIELDS = ["tenant_id", "count", "mean_magnitude", "min_magnitude", "max_magnitude",
                "first_observed_at", "last_observed_at"]  # fmt: skip


def calculate_batch(batch_id: int, *, progress: Callable[[int], Any] | None = None,
                    page: int = PAGE) -> dict[str, Any]:  # fmt: skip
    try:
        batch = ImportBatch.objects.get(pk=batch_id)
    except ImportBatch.DoesNotExist:
        raise DatasetError(f"no import batch {batch_id}") from None
    if batch.status != ImportBatch.COMPLETED:
        raise DatasetError(
            f"batch {batch_id} is {batch.status}, not completed: nothing to calculate"
        )
    after, designations = "", 0
    while True:
        groups = list(
            Observation.objects.filter(batch_id=batch_id, designation__gt=after)
            .values("designation")
            .annotate(
                count=Count("id"),
                mean=Avg("magnitude"),
                low=Min("magnitude"),
                high=Max("magnitude"),
                first=Min("observed_at"),
                last=Max("observed_at"),
            )  # fmt: skip
            .order_by("designation")[:page]
        )
        if not groups:
            break
        with transaction.atomic():
            BatchStatistic.objects.bulk_create(
                [
                    BatchStatistic(
                        batch_id=batch_id,
                        tenant_id=batch.tenant_id,
                        designation=g["designation"],
                        count=g["count"],
                        mean_magnitude=g["mean"],
                        min_magnitude=g["low"],
                        max_magnitude=g["high"],
                        first_observed_at=g["first"],
                        last_observed_at=g["last"],
                    )
                    for g in groups
                ],  # fmt: skip
                update_conflicts=True,
                unique_fields=["batch", "designation"],
                update_fields=_STAT_FIELDS,
            )
        designations += len(groups)
        after = groups[-1]["designation"]
        if progress is not None:
            progress(min(99, designations * 100 // max(1, batch.rows_imported)))
    payload = {
        "tenantId": batch.tenant_id,
        "batchId": batch.pk,
        "dataset": batch.dataset,
        "versionTag": batch.version_tag,
        "observations": batch.rows_imported,
        "rowsFailed": batch.rows_failed,
        "designations": designations,
        "completedAt": timezone.now().isoformat(),
    }
    with transaction.atomic():
        OutboundEvent.objects.bulk_create(
            [
                OutboundEvent(
                    type=BATCH_COMPLETED,
                    tenant_id=batch.tenant_id,
                    key=f"{BATCH_COMPLETED}:{batch.pk}",
                    payload=payload,
                )
            ],  # fmt: skip
            ignore_conflicts=True,  # a rerun: the first run's event stands
        )
    if progress is not None:
        progress(100)
    return {"batchId": batch.pk, "designations": designations}
