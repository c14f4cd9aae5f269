"""The calculation that follows an import: per-designation statistics of one batch.

An imported batch is calculated by a flow (docs/imports.md): its designations are cut into
ranges (`parts`), one `calculate-batch` child per range (`calculate_range`), and the
parent `finish-import` (`finish_import`) runs once every child ended: it marks the import
completed and writes the `calc.batch.completed` event to the outbox (OutboundEvent) in one
transaction, or marks it failed naming the child that failed.

Within a range, designations are taken in pages (keyset on the designation, over the
(batch, designation) index) and each page's aggregates are upserted in its own
transaction, so memory is flat in the number of designations and a rerun rewrites the same
rows. The event is keyed by the batch: emitted once, however many runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.db import connection, transaction
from django.db.models import Avg, Count, Max, Min
from django.utils import timezone

from catalog.imports.rows import DatasetError
from catalog.models import BatchStatistic, ImportBatch, Observation, OutboundEvent
from tasks import PermanentError

#: The event type, as webhooks subscribe to it (docs/imports.md).
BATCH_COMPLETED = "calc.batch.completed"
#: Designations aggregated and written per transaction.
PAGE = 1000
#: Children of one import's flow at most: a bigger batch gets bigger ranges instead (the
#: platform writes a flow in one script, which holds Redis for about 8 ms per 1,000 jobs).
MAX_PARTS = 1000
_STAT_FIELDS = ["tenant_id", "count", "mean_magnitude", "min_magnitude", "max_magnitude",
                "first_observed_at", "last_observed_at"]  # fmt: skip

Progress = Callable[[int], Any]


class CalculationFailed(PermanentError):
    """A `calculate-batch` of the import's flow failed for good: `finish-import` says which.
    Permanent: running the parent again changes nothing until that child is retried."""


def _imported(batch_id: int, in_flow: bool = False) -> ImportBatch:
    """The batch, if its rows are all written. A flow is created only once they are, so in
    one the batch may also read `failed`: from an earlier run of the flow that failed,
    which retrying the child that failed (then the parent) mends."""
    try:
        batch = ImportBatch.objects.get(pk=batch_id)
    except ImportBatch.DoesNotExist:
        raise DatasetError(f"no import batch {batch_id}") from None
    allowed = (*ImportBatch.IMPORTED, ImportBatch.FAILED) if in_flow else ImportBatch.IMPORTED
    if batch.status not in allowed:
        raise DatasetError(
            f"batch {batch_id} is {batch.status}, not imported: nothing to calculate"
        )
    return batch


def parts(batch_id: int, size: int) -> list[tuple[str, str]]:
    """The batch's designations cut into ranges of at most `size` (more when the batch
    would need over MAX_PARTS), in order: `(after, upto)`, `after` excluded and `upto`
    included; [] for a batch without observations. One query: every size-th designation,
    numbered over the (batch, designation) index, and the last one."""
    table = connection.ops.quote_name(Observation._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(DISTINCT designation) FROM {table} WHERE batch_id = %s",
                       [batch_id])  # fmt: skip
        (total,) = cursor.fetchone()
        size = max(size, -(-total // MAX_PARTS))
        cursor.execute(
            f"""SELECT designation FROM (
                  SELECT designation, row_number() OVER (ORDER BY designation) AS n
                  FROM (SELECT DISTINCT designation FROM {table} WHERE batch_id = %s) d
                ) numbered WHERE n %% %s = 0 OR n = %s ORDER BY designation""",
            [batch_id, size, total],
        )
        bounds = [row[0] for row in cursor.fetchall()]
    return list(zip(["", *bounds], bounds, strict=False))


def calculate_range(batch_id: int, *, after: str = "", upto: str | None = None,
                    progress: Progress | None = None, page: int = PAGE,
                    in_flow: bool = False) -> dict[str, Any]:  # fmt: skip
    """Statistics of the batch's designations in (`after`, `upto`] (all of them by
    default), upserted page by page; `{batchId, designations}`."""
    batch = _imported(batch_id, in_flow)
    rows = Observation.objects.filter(batch_id=batch_id)
    if upto is not None:
        rows = rows.filter(designation__lte=upto)
    designations = 0
    while True:
        groups = list(
            rows.filter(designation__gt=after)
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
        _write_page(batch, groups)
        designations += len(groups)
        after = groups[-1]["designation"]
        if progress is not None:
            progress(min(99, designations * 100 // max(1, batch.rows_imported)))
    if progress is not None:
        progress(100)
    return {"batchId": batch.pk, "designations": designations}


def _write_page(batch: ImportBatch, groups: list[dict[str, Any]]) -> None:
    with transaction.atomic():
        BatchStatistic.objects.bulk_create(
            [
                BatchStatistic(
                    batch_id=batch.pk,
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


def calculate_batch(batch_id: int, *, progress: Progress | None = None,
                    page: int = PAGE) -> dict[str, Any]:  # fmt: skip
    """The whole batch in one go, then completed with its event: a calculation run by hand
    (`calculate-batch` without a flow's parent)."""
    result = calculate_range(batch_id, progress=progress, page=page)
    complete(batch_id, result["designations"])
    return result


def complete(batch_id: int, designations: int) -> dict[str, Any]:
    """Mark the import completed and write its `calc.batch.completed` event, in one
    transaction: the event exists if and only if the import reads completed. The event's
    key makes a second run write nothing new (the first one's event stands)."""
    with transaction.atomic():
        batch = ImportBatch.objects.select_for_update().get(pk=batch_id)
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
        OutboundEvent.objects.bulk_create(
            [OutboundEvent(type=BATCH_COMPLETED, tenant_id=batch.tenant_id,
                           key=f"{BATCH_COMPLETED}:{batch.pk}", payload=payload)],
            ignore_conflicts=True,
        )  # fmt: skip
        if batch.status != ImportBatch.COMPLETED:
            ImportBatch.objects.filter(pk=batch_id).update(
                status=ImportBatch.COMPLETED, failed_reason="", finished_at=timezone.now()
            )
    return {"batchId": batch_id, "designations": designations}


def finish_import(batch_id: int, values: Mapping[str, Any],
                  failures: Mapping[str, str]) -> dict[str, Any]:  # fmt: skip
    """The flow's parent, once every `calculate-batch` child ended: with each child's value
    (`{batchId, designations}` by `queue/id`) the import completes; with a child that
    failed for good, it is marked failed naming the child, and CalculationFailed says so."""
    if failures:
        ref = min(failures)
        reason = f"child {ref} failed: {failures[ref]}"
        if len(failures) > 1:
            reason += f" (and {len(failures) - 1} more)"
        ImportBatch.objects.filter(pk=batch_id).update(
            status=ImportBatch.FAILED, failed_reason=reason[:2000], finished_at=timezone.now()
        )
        raise CalculationFailed(reason)
    _imported(batch_id, in_flow=True)
    return complete(batch_id, sum(int(v["designations"]) for v in values.values()))
