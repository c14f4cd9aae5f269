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

from project.settings import *  # noqa: E402, F403
from project.settings import INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.jobapp"]
