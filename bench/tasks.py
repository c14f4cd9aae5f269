"""A plain Celery task, as a team coming from Celery writes it: the tracked-plain-task drain
(bench.run's c) measures it through Jobyard's transport against stock Celery's bench.noop."""

from celery import shared_task


@shared_task(name="bench.plain_noop", ignore_result=True)
def plain_noop() -> None:
    """Do nothing: the cost of tracking a plain task in the registry."""
    return None
