"""Cleanup kinds of the imports: old finished batches (with their rows and files) and
delivered outbox events. Registered with `@cleanup_kind`; catalog/jobs/imports.py imports
this module so that `cleanup-old-data` knows them."""

from __future__ import annotations

from datetime import datetime

import structlog
from django.core.files.storage import default_storage
from django.db.models import Q

from catalog.cleanup import BATCH_SIZE, cleanup_kind, delete_in_batches
from catalog.models import BatchStatistic, ImportBatch, ImportRowError, Observation, OutboundEvent

log = structlog.get_logger("jobyard.catalog.cleanup")

#: Batches a pass looks at per query; each batch's children then go 1,000 rows at a time.
BATCHES_PER_PASS = 100


def old_batches(cutoff: datetime):
    """Finished batches (completed or failed) that finished before `cutoff`; a batch failed
    before it started (a refused download) has no finished_at: its creation counts."""
    finished = Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
    return ImportBatch.objects.filter(
        finished, status__in=[ImportBatch.COMPLETED, ImportBatch.FAILED]
    )


@cleanup_kind("imports")
def old_imports(cutoff: datetime) -> int:
    """Old finished batches: each one's observations, row errors and statistics in batches
    of primary keys (never one DELETE of a million rows: the cascade would be that), then
    its stored file, then its row. Pending and running batches are kept, whatever their age."""
    deleted = 0
    while True:
        batches = list(old_batches(cutoff).order_by("pk").values_list("pk", "file")
                       [:BATCHES_PER_PASS])  # fmt: skip
        if not batches:
            return deleted
        for pk, name in batches:
            children = {
                model.__name__: delete_in_batches(model.objects.filter(batch_id=pk), BATCH_SIZE)
                for model in (Observation, ImportRowError, BatchStatistic)
            }
            # The file before the row (as reports do): a crash between the two leaves a row
            # without its file, never a file that no row names.
            if name:
                default_storage.delete(name)
            deleted += ImportBatch.objects.filter(pk=pk).delete()[1].get("catalog.ImportBatch", 0)
            log.info("import_batch_deleted", batch_id=pk, **children)


@cleanup_kind("outbox")
def delivered_events(cutoff: datetime) -> int:
    """Outbox events delivered before `cutoff`; undelivered ones are kept, however old."""
    return delete_in_batches(OutboundEvent.objects.filter(delivered_at__lt=cutoff))
