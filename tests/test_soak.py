"""The soak's five-minute variant (bench/soak.py): issue 10's promise, end to end.

It runs its own Redis (AOF on) and PostgreSQL, workers, beat and recorder, under mixed load
and a chaos loop, and exits non-zero unless every job is accounted for.
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import BASE_DIR

pytestmark = pytest.mark.slow


def test_five_minutes_of_faults_lose_no_job_and_no_archive_row(tmp_path):
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "5", "--rate", "10", "--json", str(out)],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert out.exists(), done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["verdict"] == ["ok"], (result["verdict"], done.stdout[-3000:])
    assert result["lost_or_stuck"] == 0 and result["archive"]["missing_count"] == 0
    assert "unexplained" not in result["double_runs"]
    kinds = {f["kind"] for f in result["faults"]}
    assert {"sigkill", "sigterm", "redis_restart"} <= kinds
    assert any(k.startswith("postgres_stop") for k in kinds)
    assert result["bad_input"]["refused"] > 0 and result["bad_input"]["accepted"] == 0
    assert result["schedule_runs"] > 0
    assert done.returncode == 0
