"""Pruning 1,000,000 old archive rows in batches while the admin's job list is loaded.

    .venv/bin/python bench/archive_prune.py [--rows 1000000] [--batch 5000]

Starts a private PostgreSQL in a temporary folder (as bin/test does), migrates, fills the
archive with --rows finished jobs past their retention (half completed 8 days ago, half
failed 31 days ago, an attempt for every tenth) and 20,000 recent ones, ANALYZEs, then runs
`tasks.archive_retention.prune_archive` while a thread requests the admin's job list
(three pages in turn: no filter, state=completed, a search) through Django's test client.
Prints per-batch durations and the list's latencies during the prune (Markdown for
docs/benchmarks.md) and writes them to bench/results/archive_prune.json. Needs no Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.admin_jobs import machine  # noqa: E402
from project.localdev import PostgresServer, free_port  # noqa: E402

#: Old rows (past retention) and recent ones, as the recorder would have written them.
FILL_SQL = """
INSERT INTO tasks_jobrecord (queue, job_id, name, state, data, opts, returnvalue,
    failed_reason, stacktrace, attempts_made, progress, created_at, processed_on,
    finished_on, worker, removed_at, updated_at)
SELECT %(queue)s, %(prefix)s || i, 'send-email', %(state)s,
       jsonb_build_object('to', 'user' || i || '@example.com', 'n', i), '{"attempts": 3}'::jsonb,
       '{"ok": true}'::jsonb, '', '[]'::jsonb, 1, NULL,
       t.at - interval '40 ms', t.at - interval '40 ms', t.at, 'main@host', NULL, now()
FROM generate_series(1, %(rows)s) AS i,
     LATERAL (SELECT now() - %(age)s::interval - i * interval '1 second' AS at) AS t
"""
ATTEMPTS_SQL = """
INSERT INTO tasks_jobattempt (job_id, number, started_at, finished_at, outcome, failed_reason,
    worker, event_id)
SELECT id, 1, processed_on, finished_on, 'completed', '', 'main@host', '1-0'
FROM tasks_jobrecord WHERE id % 10 = 0
"""
PAGES = ["", "?state=completed", "?q=user1234%40example.com"]


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 \
        else values[0]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--output", default=str(ROOT / "bench/results/archive_prune.json"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="jobyard-bench-prune-"))
    os.chmod(tmp, 0o755)  # the postgres user must reach its data folder inside
    postgres = PostgresServer(free_port(), tmp / "postgres", durable=False)
    try:
        postgres.start()
        os.environ.update(
            DATABASE_URL=postgres.url(), DJANGO_SETTINGS_MODULE="project.settings",
            DEBUG="true", ALLOWED_HOSTS="testserver", LOG_LEVEL="WARNING",
            REDIS_URL="redis://127.0.0.1:1/0",  # never contacted: pruning reads PostgreSQL
        )  # fmt: skip
        result = run(args.rows, args.batch)
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    finally:
        postgres.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(rows: int, batch: int) -> dict:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection, connections
    from django.test import Client
    from django.test.utils import setup_test_environment

    from tasks.archive_retention import prune_archive

    setup_test_environment()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for queue, state, prefix, count, age in (
            ("email", "completed", "old-done-", rows // 2, "8 days"),
            ("webhooks", "failed", "old-fail-", rows - rows // 2, "31 days"),
            ("email", "completed", "new-", 20_000, "1 hour"),
        ):
            cursor.execute(FILL_SQL, {"queue": queue, "state": state, "prefix": prefix,
                                      "rows": count, "age": age})  # fmt: skip
        cursor.execute(ATTEMPTS_SQL)
        cursor.execute("ANALYZE tasks_jobrecord; ANALYZE tasks_jobattempt")
        cursor.execute("SELECT pg_total_relation_size('tasks_jobrecord') "
                       "+ pg_total_relation_size('tasks_jobattempt')")  # fmt: skip
        size = cursor.fetchone()[0]
    filled = time.perf_counter() - started
    header = machine()
    load = os.getloadavg()
    print(f"{header}; load average at start {load[0]:.2f}\n")
    print(f"Filled {rows:,} old rows + 20,000 recent (and an attempt per tenth) in "
          f"{filled:.0f} s; jobs and attempts with indexes: {size / 2**20:.0f} MiB.\n")  # fmt: skip

    user = User.objects.create_superuser("bench", "bench@example.com", "bench-password-1")
    stop = threading.Event()
    latencies: list[float] = []
    statuses: list[int] = []

    def browse() -> None:
        client = Client()
        client.force_login(user)
        client.get("/admin/tasks/jobrecord/")  # warm-up
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                response = client.get("/admin/tasks/jobrecord/" + PAGES[len(statuses) % 3])
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses.append(response.status_code)
        finally:
            connections.close_all()

    browser = threading.Thread(target=browse)
    browser.start()
    batches = []
    t0 = time.perf_counter()
    try:
        summary = prune_archive(batch_size=batch, on_batch=batches.append)
    finally:
        elapsed = time.perf_counter() - t0
        stop.set()
        browser.join()
    durations = [b.seconds * 1000 for b in batches]
    result = {
        "machine": header, "load_at_start": load, "load_at_end": os.getloadavg(),
        "rows": rows, "batch_size": batch, "fill_s": round(filled, 1),
        "size_bytes_before": size, "deleted": summary.total, "attempts_deleted": summary.attempts,
        "batches": len(batches), "prune_s": round(elapsed, 1),
        "rows_per_s": round(summary.total / elapsed),
        "batch_ms": {"p50": round(pct(durations, 50), 1), "p95": round(pct(durations, 95), 1),
                     "max": round(max(durations), 1)},
        "admin_list_during_prune_ms": {
            "requests": len(latencies), "non_200": sum(s != 200 for s in statuses),
            "p50": round(pct(latencies, 50), 1), "p95": round(pct(latencies, 95), 1),
            "max": round(max(latencies), 1)},
    }  # fmt: skip
    b, a = result["batch_ms"], result["admin_list_during_prune_ms"]
    print(
        "| rows pruned | attempts | batches of | batches | total s | rows/s | batch p50 ms "
        "| batch p95 ms | batch max ms | admin list requests | p50 ms | p95 ms | max ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {summary.total:,} | {summary.attempts:,} | {batch:,} | {len(batches)} | "
        f"{elapsed:.0f} | {result['rows_per_s']:,} | {b['p50']} | {b['p95']} | {b['max']} | "
        f"{a['requests']} ({a['non_200']} not 200) | {a['p50']} | {a['p95']} | {a['max']} |"
    )
    return result


if __name__ == "__main__":
    main()
