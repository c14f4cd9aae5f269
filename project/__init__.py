# redis://, rediss:// and sentinel:// name Jobyard's transport in every process (broker.py).
from project import broker  # noqa: F401

# The Celery app is loaded with Django so that @shared_task and job_type bind to it.
from project.celery import app as celery_app

__all__ = ("celery_app",)
