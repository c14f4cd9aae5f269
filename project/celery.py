"""The Celery app, configured from Django settings (the CELERY_ namespace)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Job types live in each app's jobs.py (not tasks.py: `tasks` is the platform package).
app.autodiscover_tasks(related_name="jobs")
