"""`ingest-dataset`, then the flow `finish-import` <- `calculate-batch` x N: thin entry
points over catalog.imports (docs/imports.md draws the flow)."""

from typing import Annotated, Literal

from pydantic import StringConstraints

from catalog.imports import calculate, service
from catalog.imports import cleanup as _cleanup  # noqa: F401  (registers its cleanup kinds)
from catalog.imports.ingest import import_batch
from catalog.imports.rows import DatasetError
from catalog.models import ImportBatch
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
    """Import a dataset of observations in chunks, then create its calculation's flow.

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
        if batch.source == ImportBatch.URL and batch.status not in ImportBatch.IMPORTED:
            service.fetch_into(batch)
        result = import_batch(batch.pk, job_id=job.id, progress=job.update_progress)
        if result["status"] == ImportBatch.CALCULATING:
            # After the last chunk committed, not inside it: a crash in between leaves this
            # job to run again (stalled, or retried), which skips the import and creates
            # the flow then; the flow's ids make a second creation a no-op.
            result["calculation"] = service.start_calculation(batch).job.id
        return result
    except Exception as exc:
        # The batch's fate when no attempt follows (STYLE.md, lesson 5): failed, with the
        # reason, rather than `running` for ever. An attempt that will be retried leaves it
        # running, its resume_line kept for the next one.
        if isinstance(exc, PermanentError) or job.attempts_made + 1 >= job.attempts:
            service.give_up(batch.pk, job.attempts_made + 1, job.attempts, exc)
        raise


def _check_tenant(tenant_id: str, batch_id: int) -> None:
    if not ImportBatch.objects.filter(pk=batch_id, tenant_id=tenant_id).exists():
        raise DatasetError(f"no import batch {batch_id} for tenant {tenant_id}")


@job_type("calculate-batch", queue="catalog", attempts=3,
          backoff={"type": "exponential", "delay": 5000, "factor": 5, "jitter": 0.2})  # fmt: skip
def calculate_batch(job, tenant_id: Name, batch_id: int, part: int | None = None,
                    after: str = "", upto: str | None = None) -> dict:  # fmt: skip
    """Per-designation statistics of an imported batch.

    Part `part` of the import's flow computes the designations in (after, upto] and
    returns `{batchId, designations}` to the parent `finish-import`, which completes the
    import. Without a part (run by hand), it calculates the whole batch and completes it
    itself: either way `calc.batch.completed` goes out once.
    """
    _check_tenant(tenant_id, batch_id)
    if part is None:
        return calculate.calculate_batch(batch_id, progress=job.update_progress)
    return calculate.calculate_range(batch_id, after=after, upto=upto,
                                     progress=job.update_progress, in_flow=True)  # fmt: skip


@job_type("finish-import", queue="catalog", attempts=3,
          backoff={"type": "exponential", "delay": 5000, "factor": 5, "jitter": 0.2})  # fmt: skip
def finish_import(job, tenant_id: Name, batch_id: int) -> dict:
    """The parent of an import's calculation flow, run once every `calculate-batch` child
    ended: marks the import completed and writes `calc.batch.completed` to the outbox, or,
    when a child failed for good, marks the import failed naming it and fails too."""
    _check_tenant(tenant_id, batch_id)
    return calculate.finish_import(batch_id, job.children_values(), job.children_failures())
