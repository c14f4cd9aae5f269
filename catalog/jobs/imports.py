"""`ingest-dataset` and `calculate-batch`: thin entry points over catalog.imports."""

from typing import Annotated, Literal

from django.db import transaction
from pydantic import StringConstraints

import tasks  # tasks.enqueue, not `from tasks import enqueue`: import-linter reads that as
from catalog.imports import cleanup as _cleanup  # noqa: F401  (registers its cleanup kinds)
from catalog.imports import service
from catalog.imports.calculate import calculate_batch as calculate
from catalog.imports.ingest import import_batch
from catalog.imports.rows import DatasetError
from catalog.models import ImportBatch

#                 the private module tasks.enqueue (the domain-apps contract)
from tasks import PermanentError, job_type

Name = Annotated[str, StringConstraints(pattern=service.NAME_PATTERN)]
Version = Annotated[str, StringConstraints(pattern=service.VERSION_PATTERN)]


@job_type("ingest-dataset", queue="catalog", attempts=3, timeout=3_600_000,
          backoff={"type": "exponential", "delay": 5000, "factor": 5, "jitter": 0.2})  # fmt: skip
def ingest_dataset(
    job,
    tenant_id: Name,
    source: Literal["csv", "json", "url"],
    version_tag: Version,
    dataset: Name = "observations",
    batch_id: int | None = None,
    url: str | None = None,
    format: Literal["csv", "json"] | None = None,
) -> dict:
    """Import a dataset of observations in chunks, then enqueue its calculation.

    Uploads (csv, json) are stored on a batch first (the admin, POST /api/v1/catalog/imports)
    and name it by batchId; a `url` source may come without one (the CLI): the job then makes
    the batch, downloads the file into it, and imports it.
    """
    if batch_id is None:
        if source != ImportBatch.URL or not url:
            raise DatasetError(
                "a csv or json import names its stored batch (batchId): upload the file in the"
                " admin or POST it to /api/v1/catalog/imports; or give source=url and a url"
            )
        batch = service.url_batch(tenant_id, dataset, version_tag, url, format, job.id)
    else:
        batch = ImportBatch.objects.filter(pk=batch_id).first()
        if batch is None:
            raise DatasetError(f"no import batch {batch_id}")
        if (batch.tenant_id, batch.dataset, batch.version_tag) != (tenant_id, dataset, version_tag):
            raise DatasetError(
                f"batch {batch_id} is {batch}, not {tenant_id}/{dataset}@{version_tag}"
            )
    try:
        if batch.source == ImportBatch.URL and batch.status != ImportBatch.COMPLETED:
            service.fetch_into(batch)
        return import_batch(batch.pk, job_id=job.id, progress=job.update_progress,
                            on_complete=_enqueue_calculation)  # fmt: skip
    except Exception as exc:
        # The batch's fate when no attempt follows (STYLE.md, lesson 5): failed, with the
        # reason, rather than `running` for ever. An attempt that will be retried leaves it
        # running, its resume_line kept for the next one.
        if isinstance(exc, PermanentError) or job.attempts_made + 1 >= job.attempts:
            service.give_up(batch.pk, job.attempts_made + 1, job.attempts, exc)
        raise


def _enqueue_calculation(batch: ImportBatch) -> None:
    # Called inside the import's last transaction: the job is sent when it commits.
    assert transaction.get_connection().in_atomic_block
    tasks.enqueue("calculate-batch", {"tenant_id": batch.tenant_id, "batch_id": batch.pk},
            job_id=service.calc_job_id(batch.tenant_id, batch.pk))  # fmt: skip


@job_type("calculate-batch", queue="catalog", attempts=3,
          backoff={"type": "exponential", "delay": 5000, "factor": 5, "jitter": 0.2})  # fmt: skip
def calculate_batch(job, tenant_id: Name, batch_id: int) -> dict:
    """Per-designation statistics of an imported batch; emits `calc.batch.completed`."""
    if not ImportBatch.objects.filter(pk=batch_id, tenant_id=tenant_id).exists():
        raise DatasetError(f"no import batch {batch_id} for tenant {tenant_id}")
    return calculate(batch_id, progress=job.update_progress)
