"""The project's settings with the test job types installed and the clocks sped up.

Worker processes started by the tests load this module too (DJANGO_SETTINGS_MODULE is
inherited), so both sides agree on every time below.
"""

import os

for _name, _value in {
    "JOBYARD_BACKOFF_SCALE": "0.01",  # the default 5 s, 25 s, 125 s become 50, 250, 1250 ms
    "JOBYARD_LOCK_DURATION_MS": "2000",
    "JOBYARD_STALLED_INTERVAL_MS": "500",
    "JOBYARD_RECONCILE_GRACE_MS": "3000",
    "JOBYARD_PROMOTE_INTERVAL_MS": "50",
    "JOBYARD_HEARTBEAT_INTERVAL_MS": "500",
    "JOBYARD_BEAT_LEASE_MS": "2000",
}.items():
    os.environ.setdefault(_name, _value)
# Stored files (imports, reports) go under bin/test's temporary folder, for this process
# and every worker it starts alike (they inherit the environment), never into the tree.
if "JOBYARD_TEST_TMP" in os.environ:
    os.environ.setdefault("MEDIA_ROOT", os.path.join(os.environ["JOBYARD_TEST_TMP"], "media"))

# Email goes to the SMTP server tests/notifications/conftest.py starts on this loopback port,
# chosen once by the pytest process: the workers inherit the variables, so every worker (the
# session one, which consumes `email`, and a test's own) sends to that one server.
if "JOBYARD_TEST_SMTP_PORT" not in os.environ:
    import socket

    with socket.socket() as _probe:
        _probe.bind(("127.0.0.1", 0))
        os.environ["JOBYARD_TEST_SMTP_PORT"] = str(_probe.getsockname()[1])
os.environ.setdefault("EMAIL_URL", f"smtp://127.0.0.1:{os.environ['JOBYARD_TEST_SMTP_PORT']}")
os.environ.setdefault("DEFAULT_FROM_EMAIL", "Jobyard <jobyard@jobyard.test>")

from project.settings import *  # noqa: E402, F403
from project.settings import INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.jobapp"]

# CELERY_BEAT_SCHEDULE, as a project would write it: tests/test_beat_config.py starts beats
# with JOBYARD_TEST_BEAT_SCHEDULE=<name> to pick one; other processes see none.
from datetime import timedelta  # noqa: E402

from celery.schedules import crontab, schedule  # noqa: E402

_BEAT_SCHEDULES = {
    "fire": {
        # A job type, every second (a number of seconds), with a Celery priority and a job option.
        "cfg-job": {"task": "t-record.email", "schedule": 1.0, "kwargs": {"key": "cfg-job"},
                    "options": {"priority": 2, "attempts": 1}},
        # A plain Celery task, every second (a timedelta), sent with Celery's options.
        "cfg-plain": {"task": "jobapp.plain-record", "schedule": timedelta(seconds=1),
                      "args": ["cfg-plain", 7], "kwargs": {"colour": "red"},
                      "options": {"queue": "reports", "priority": 3, "expires": 30}},
        "cfg-cron": {"task": "t-echo.email", "schedule": crontab(minute="0", hour="4"),
                     "kwargs": {"value": 1}},
        "cfg-every": {"task": "t-echo.email", "schedule": schedule(timedelta(minutes=5))},
    },
    "refused": {
        "cfg-unknown": {"task": "jobapp.no-such-task", "schedule": 10},
        "cfg-countdown": {"task": "ping", "schedule": 10, "options": {"countdown": 5}},
    },
}  # fmt: skip
CELERY_BEAT_SCHEDULE = _BEAT_SCHEDULES.get(os.environ.get("JOBYARD_TEST_BEAT_SCHEDULE", ""), {})
