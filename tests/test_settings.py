"""Settings are parsed strictly: a malformed variable stops start-up and is named."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure
BASE_DIR = Path(__file__).resolve().parent.parent


def start_django(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, **env}, cwd=BASE_DIR, capture_output=True, text=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "yes please"),
        ("QUEUE_CONCURRENCY", "five"),
        ("QUEUE_REPORTS_CONCURRENCY", "0"),
        ("REDIS_URL", "not a url"),
        ("REDIS_PORT", "http"),
        ("LOG_FORMAT", "xml"),
        ("REDIS_TLS", "sometimes"),
    ],
)
def test_it_refuses_a_malformed_variable_and_names_it(variable, value):
    env = {
        k: v
        for k, v in os.environ.items()
        if not (variable in ("REDIS_PORT", "REDIS_TLS") and k == "REDIS_URL")
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**env, variable: value}, cwd=BASE_DIR, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Invalid environment" in result.stderr
    assert variable in result.stderr


def test_it_ignores_the_redis_parts_when_redis_url_is_set():
    # What Kubernetes injects for a Service named "redis".
    result = start_django(REDIS_PORT="tcp://10.0.0.7:6379", REDIS_HOST="tcp://10.0.0.7")
    assert result.returncode == 0, result.stderr


def test_it_names_every_bad_variable_at_once():
    result = start_django(DEBUG="maybe", QUEUE_CONCURRENCY="-1")
    assert result.returncode != 0
    assert "DEBUG" in result.stderr and "QUEUE_CONCURRENCY" in result.stderr


def test_it_has_no_secret_or_hosts_defaults_without_debug():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS")}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**env, "DEBUG": "false"}, cwd=BASE_DIR, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "ALLOWED_HOSTS" in result.stderr


def test_it_passes_check_deploy_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={
            **os.environ,
            "DEBUG": "false",
            "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-" + "y" * 20,
            "ALLOWED_HOSTS": "jobs.example.com",
        },
        cwd=BASE_DIR, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout
