"""Django settings for the benchmark: the project's own, plus the `bench` app.

Only an opt-in switch differs from project/settings.py: BENCH_TASK_EVENTS=0 turns the
worker's Celery task events off (the project sends them for Flower), for the diagnostic
drain that shows what they cost. Unset, everything is exactly as the project ships it.
"""

import os

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS as _PROJECT_APPS

INSTALLED_APPS = [*_PROJECT_APPS, "bench"]

if os.environ.get("BENCH_TASK_EVENTS") == "0":
    CELERY_WORKER_SEND_TASK_EVENTS = False
    CELERY_TASK_SEND_SENT_EVENT = False
