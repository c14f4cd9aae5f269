"""Django settings for the benchmark: the project's own, plus the `bench` app.

Only an opt-in switch differs from project/settings.py: BENCH_TASK_EVENTS=1 (or 0) turns
the worker's Celery task events on (or off) whatever the project's default, for the
diagnostic drain that shows what they cost (Flower switches them on in the workers it
watches). Unset, everything is exactly as the project ships it.
"""

import os

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS as _PROJECT_APPS

INSTALLED_APPS = [*_PROJECT_APPS, "bench"]

if os.environ.get("BENCH_TASK_EVENTS") in ("0", "1"):
    CELERY_WORKER_SEND_TASK_EVENTS = os.environ["BENCH_TASK_EVENTS"] == "1"
