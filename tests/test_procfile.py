"""The Procfile is valid for honcho and its workers cover every queue exactly once."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from project.localdev import PROCESSES

pytestmark = pytest.mark.pure
BASE_DIR = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, str]:
    lines = (BASE_DIR / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_it_passes_honcho_check():
    honcho = Path(sys.executable).parent / "honcho"
    result = subprocess.run(
        [honcho, "check", "-f", "Procfile"], cwd=BASE_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_it_consumes_every_queue_exactly_once():
    consumed = []
    for _name, command in procfile().items():
        if "celery -A project worker" in command:
            consumed += re.search(r"-Q (\S+)", command).group(1).split(",")
    assert sorted(consumed) == sorted(settings.JOBYARD_QUEUES)


def test_it_has_the_processes_design_names():
    entries = procfile()
    assert {"release", "web", "beat", "flower"} <= set(entries)
    assert "migrate" in entries["release"] and "setup_schedules" in entries["release"]
    assert "-S tasks.scheduling.beat:JobyardScheduler" in entries["beat"]
    # Jobyard's Flower (auth on /metrics and /healthcheck too); FLOWER_BASIC_AUTH is read
    # from the environment, not passed where `ps` shows it.
    assert entries["flower"].startswith("python -m tasks.flower ")
    assert "--basic-auth" not in entries["flower"] and "FLOWER_BASIC_AUTH" not in entries["flower"]
    # bin/run starts everything but release, which it runs itself first.
    assert "record_jobs" in entries["recorder"]
    assert sorted(PROCESSES) == sorted(set(entries) - {"release"})
