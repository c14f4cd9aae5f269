"""The admin's job list on 1,000,000 archived jobs: one page per filter, timed.

    .venv/bin/python bench/admin_jobs.py [--rows 1000000] [--runs 5]

Starts a private PostgreSQL in a temporary folder (as bin/test does), migrates, fills the
archive with generated rows (INSERT ... SELECT generate_series, into the indexed table),
ANALYZEs, then requests the changelist through Django's test client logged in as a
superuser: once to warm up, then --runs times per URL. Prints a Markdown table (median and
slowest run, queries per page) for docs/benchmarks.md. Needs no Redis: the list reads the
archive only.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from project.localdev import PostgresServer, free_port  # noqa: E402

QUEUES = ["default", "email", "notifications", "webhooks", "reports", "cleanup", "catalog"]
NAMES = ["ping", "send-email", "deliver-webhook", "send-sms", "build-report", "cleanup-old-data",
         "update-comets"]  # fmt: skip

#: Rows made in SQL: states weighted as a busy system's archive (mostly completed), created
#: one every ~2.6 s over the last 30 days, data with a per-row address and number.
FILL_SQL = """
INSERT INTO tasks_jobrecord (queue, job_id, name, state, data, opts, returnvalue,
    failed_reason, stacktrace, attempts_made, progress, created_at, processed_on,
    finished_on, worker, removed_at, updated_at)
SELECT q.queues[1 + i %% 7], md5(i::text), q.names[1 + (i / 7) %% 7],
       CASE WHEN i %% 100 < 80 THEN 'completed' WHEN i %% 100 < 90 THEN 'failed'
            WHEN i %% 100 < 94 THEN 'waiting' WHEN i %% 100 < 97 THEN 'delayed'
            WHEN i %% 100 < 98 THEN 'active' ELSE 'cancelled' END,
       jsonb_build_object('to', 'user' || i || '@example.com', 'n', i),
       '{"attempts": 3}'::jsonb, '{"ok": true}'::jsonb,
       CASE WHEN i %% 100 BETWEEN 80 AND 89 THEN 'RuntimeError: boom' ELSE '' END,
       '[]'::jsonb, 1, '0'::jsonb,
       now() - i * interval '2.6 seconds', now() - i * interval '2.6 seconds',
       now() - i * interval '2.6 seconds' + interval '40 ms', 'main@host',
       CASE WHEN i %% 100 >= 98 THEN now() - i * interval '2.6 seconds' END, now()
FROM generate_series(1, %(rows)s) AS i,
     (SELECT %(queues)s::text[] AS queues, %(names)s::text[] AS names) AS q
"""


def pages(rows: int) -> list[tuple[str, str]]:
    probe = f"{rows // 2}"
    import hashlib

    some_id = hashlib.md5(probe.encode()).hexdigest()
    return [
        ("no filter (first page)", ""),
        ("queue=email", "queue=email"),
        ("state=failed", "state=failed"),
        ("state=cancelled (2 %)", "state=cancelled"),
        ("job type=ping", "name=ping"),
        ("queue=email & state=failed", "queue=email&state=failed"),
        ("created: past hour", "created=1h"),
        ("created: past 24 h & state=failed", "created=24h&state=failed"),
        ("removed=yes", "removed=yes"),
        ("search: full job id", f"q={some_id}"),
        ("search: id prefix (6 chars)", f"q={some_id[:6]}"),
        ("search: data value", f"q=user{probe}@example.com"),
        ("search: data key=value", f"q=n%3D{probe}"),
        ("page 100 (offset 4,950)", "p=100"),
        ("page 2,000 (offset 99,950)", "p=2000"),
    ]


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    pg = subprocess.run(
        [str(PostgresServer(0, Path("/tmp")).bindir / "postgres"), "--version"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return (f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.0f} GiB RAM, "
            f"{pg}, Python {platform.python_version()}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="jobyard-bench-admin-"))
    os.chmod(tmp, 0o755)  # the postgres user must reach its data folder inside
    postgres = PostgresServer(free_port(), tmp / "postgres", durable=False)
    try:
        postgres.start()
        os.environ.update(
            DATABASE_URL=postgres.url(), DJANGO_SETTINGS_MODULE="project.settings",
            DEBUG="true", ALLOWED_HOSTS="testserver", LOG_LEVEL="WARNING",
            REDIS_URL="redis://127.0.0.1:1/0",  # never contacted: the list reads PostgreSQL
        )  # fmt: skip
        run(args.rows, args.runs)
    finally:
        postgres.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(rows: int, runs: int) -> None:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(FILL_SQL, {"rows": rows, "queues": QUEUES, "names": NAMES})
        filled = time.perf_counter() - started
        cursor.execute("ANALYZE tasks_jobrecord")
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('tasks_jobrecord'))")
        size = cursor.fetchone()[0]
        count_started = time.perf_counter()
        cursor.execute("SELECT COUNT(*) FROM tasks_jobrecord")
        full_count_ms = (time.perf_counter() - count_started) * 1000
    print(f"{machine()}\n")
    print(f"Inserted {rows:,} rows into the indexed table in {filled:.1f} s "
          f"({rows / filled:,.0f} rows/s); table and indexes: {size}. "
          f"A plain `SELECT COUNT(*)` of the table, which the list never runs: "
          f"{full_count_ms:.0f} ms.\n")  # fmt: skip

    user = User.objects.create_superuser("bench", "bench@example.com", "bench-password-1")
    client = Client()
    client.force_login(user)
    print("| page | median ms | slowest ms | SQL ms (median) | SQL queries | rows shown |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, query in pages(rows):
        url = f"/admin/tasks/jobrecord/?{query}"
        response = client.get(url)  # warm-up
        assert response.status_code == 200, (url, response.status_code)
        times, sql_times = [], []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                t0 = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
            sql_times.append(sum(float(q["time"]) for q in queries) * 1000)
        shown = response.content.decode().count('class="field-job_id"')
        print(f"| {label} | {statistics.median(times):.0f} | {max(times):.0f} | "
              f"{statistics.median(sql_times):.0f} | {len(queries)} | {shown} |")  # fmt: skip


if __name__ == "__main__":
    main()
