"""Peak memory of a large CSV report: flat in the number of rows.

    .venv/bin/python -m bench.catalog_report [--rows 10000 100000]

Starts a private Redis and PostgreSQL (project.localdev.private_services, as bin/test and
bench/catalog_import.py do), migrates, then for each size runs a fresh Python process
that fills the comet table with that many rows (one INSERT ... SELECT FROM
generate_series, made in PostgreSQL: the process holds none of them) and writes a
`comet-catalog` CSV report through `catalog.reports.service.generate`, the plain function
the `generate-report` job calls (rows read with a server-side cursor, written to a
temporary file in chunks, saved to storage). Each process reports its peak RSS
(getrusage ru_maxrss: peak, so one process per size), its RSS before the report, and the
report's time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench import common
from bench.catalog_import import current_rss_mb, peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "catalog_report.json"

SEED = """
INSERT INTO catalog_comet (name, fullname, mpc_name, icq_name, type, component,
    current_magnitude, peak_magnitude, is_observed, is_active, first_seen, last_seen, source)
SELECT 'C/2024 B' || i, 'C/2024 B' || i || ' (Bench)', '', '', 'C', '',
       5 + (i %% 130) / 10.0, 4 + (i %% 100) / 10.0, true, i %% 7 <> 0, now(), now(), 'bench'
FROM generate_series(1, %s) AS i
"""


def child(rows: int) -> dict:
    import django

    django.setup()
    from django.core.files.storage import default_storage
    from django.db import connection

    from catalog.models import Report
    from catalog.reports.service import generate

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE catalog_comet")
        cursor.execute(SEED, [rows])
    before = current_rss_mb()
    updates = []
    started = time.perf_counter()
    result = generate(f"bench-{rows}", "comet-catalog", "csv", {}, None, updates.append)
    elapsed = time.perf_counter() - started
    report = Report.objects.get(pk=result["reportId"])
    assert report.rows == rows and default_storage.size(report.file.name) == report.size
    return {"rows": rows, "file_mb": round(report.size / 1024**2, 1),
            "rss_before_report_mb": round(before, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "seconds": round(elapsed, 2), "rows_per_second": round(rows / elapsed),
            "progress_updates": len(updates)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    with common.migrated_private_services("jobyard-bench-reports-", ROOT) as (env, tmp):
        results = []
        for rows in args.rows:
            out = subprocess.run([sys.executable, "-m", "bench.catalog_report", "--child", str(rows)],
                                 cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
            if out.returncode:
                sys.exit(out.stderr)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "system": platform.platform()}, "results": results}  # fmt: skip
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
