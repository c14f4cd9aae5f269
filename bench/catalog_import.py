"""Peak memory of a large catalog import: flat in the number of rows.

    .venv/bin/python -m bench.catalog_import [--rows 100000 1000000]

Starts a private Redis and PostgreSQL (project.localdev.private_services, as bin/test does),
migrates, then for each size runs a fresh Python process that generates a CSV of that many
observation rows (written line by line), stores it on an ImportBatch and imports it through
`catalog.imports.ingest.import_batch`, the plain function the `ingest-dataset` job calls
(COPY in chunks of CATALOG_IMPORT_CHUNK_ROWS). Each process reports its peak RSS
(getrusage ru_maxrss: peak, so one process per size), its RSS before the import, and the
import's time. One row in a hundred is invalid, so row errors are written too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench import common

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "catalog_import.json"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**2


def child(rows: int, media: Path) -> dict:
    import django

    django.setup()
    from django.core.files import File

    from catalog.imports.ingest import import_batch
    from catalog.models import ImportBatch

    path = media / f"obs-{rows}.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("designation,observed_at,magnitude,observer,method\n")
        for i in range(rows):
            magnitude = "bright" if i % 100 == 99 else f"{5 + (i % 130) / 10:.1f}"
            out.write(f"C/2024 X{i % 500},2024-{1 + i % 12:02d}-{1 + i % 28:02d}T"
                      f"{i % 24:02d}:00:00,{magnitude},OBS{i % 40},visual\n")  # fmt: skip
    batch = ImportBatch(tenant_id="bench", dataset="obs", version_tag=f"n{rows}",
                        source="csv", format="csv")  # fmt: skip
    with path.open("rb") as stored:
        batch.file.save(path.name, File(stored), save=False)
    batch.save()
    before = current_rss_mb()
    started = time.perf_counter()
    result = import_batch(batch.pk)
    elapsed = time.perf_counter() - started
    return {"rows": rows, "file_mb": round(path.stat().st_size / 1024**2, 1),
            "rss_before_import_mb": round(before, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "seconds": round(elapsed, 1), "rows_per_second": round(rows / elapsed),
            "imported": result["rowsImported"], "failed": result["rowsFailed"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(os.environ["MEDIA_ROOT"]))))
        return
    with common.migrated_private_services("jobyard-bench-imports-", ROOT) as (env, tmp):
        results = []
        for rows in args.rows:
            out = subprocess.run([sys.executable, "-m", "bench.catalog_import", "--child", str(rows)],
                                 cwd=ROOT, env=env, check=True, capture_output=True, text=True)  # fmt: skip
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "system": platform.platform()}, "results": results}  # fmt: skip
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
