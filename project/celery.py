"""The Celery app, configured from Django settings (the CELERY_ namespace)."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Job types live in each app's jobs.py; plain Celery tasks in its tasks.py, as Celery's own
# docs place them. Both are imported by every process, so a task sent by the web is known
# to the workers.
app.autodiscover_tasks(related_name="jobs")
app.autodiscover_tasks(related_name="tasks")


@signals.setup_logging.connect
def _keep_project_logging(**kwargs) -> None:
    """Logging is configured from LOG_FORMAT and LOG_LEVEL (project/logging.py). With a
    receiver here Celery leaves it alone; without one it resets the root logger to the
    worker's -l level (WARNING by default), silently dropping job_start and job_complete."""
