"""The cost of a group on enqueue: plain and grouped enqueues side by side, alternating.

    .venv/bin/python -m bench.groups [--n 20000] [--rounds 3] [--groups 100]

Starts its own redis-server on a free loopback port (no persistence), as bench.run does,
flushes it before each measurement, and alternates per round: `enqueue` without a group,
`enqueue` with one of `--groups` groups (round robin over them), then the same with
`enqueue_bulk` (1,000 a call). Every rate is kept; the best of each is compared. Writes
bench/results/groups-latest.json (or --output). docs/benchmarks.md, "Groups".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run import RESULTS_DIR, foreign_load, log, machine
from project.localdev import RedisServer, free_port


def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    os.environ.update(REDIS_URL=url, BENCH_REDIS_URL=url, DJANGO_SETTINGS_MODULE="bench.settings",
                      DATABASE_URL="sqlite://:memory:", LOG_LEVEL="WARNING")  # fmt: skip
    import django

    django.setup()
    import tasks
    from bench import jobyard_bench as jy

    r = jy.client()
    n, names = args.n, [f"tenant-{i}" for i in range(args.groups)]

    def single(grouped: bool) -> float:
        jy.warm_up(r)
        start = time.perf_counter()
        for i in range(n):
            if grouped:
                tasks.enqueue(jy.NOOP, group=names[i % len(names)])
            else:
                tasks.enqueue(jy.NOOP)
        rate = n / (time.perf_counter() - start)
        assert tasks.Queue(jy.QUEUE).counts()["waiting"] == n
        return rate

    def bulk(grouped: bool) -> float:
        jy.warm_up(r)
        start = time.perf_counter()
        for at in range(0, n, 1000):
            tasks.enqueue_bulk([
                (jy.NOOP, {}, {"group": names[i % len(names)]} if grouped else {})
                for i in range(at, min(n, at + 1000))
            ])  # fmt: skip
        rate = n / (time.perf_counter() - start)
        assert tasks.Queue(jy.QUEUE).counts()["waiting"] == n
        return rate

    rounds: dict[str, list[float]] = {k: [] for k in ("single", "single_grouped", "bulk",
                                                      "bulk_grouped")}  # fmt: skip
    for i in range(args.rounds):
        for name, fn, grouped in (("single", single, False), ("single_grouped", single, True),
                                  ("bulk", bulk, False), ("bulk_grouped", bulk, True)):  # fmt: skip
            rate = fn(grouped)
            rounds[name].append(round(rate))
            log(f"round {i + 1} {name}: {rate:,.0f} jobs/s")
    best = {name: max(rates) for name, rates in rounds.items()}
    return {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {"n": n, "rounds": args.rounds, "groups": args.groups},
        "machine": machine(r, False),
        "load_at_start": foreign_load(),
        "rounds_jobs_per_s": rounds,
        "best_jobs_per_s": best,
        "grouped_vs_plain": {
            "single": round(best["single_grouped"] / best["single"], 3),
            "bulk": round(best["bulk_grouped"] / best["bulk"], 3),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.groups", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--n", type=int, default=20_000, help="jobs per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--groups", type=int, default=100, help="groups the grouped jobs go to")
    ap.add_argument("--output", type=Path, default=RESULTS_DIR / "groups-latest.json")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="jobyard-bench-"))
    server = RedisServer(free_port(), tmp / "redis", persistent=False)
    try:
        server.start()
        out = measure(args, server.url)
        out["load_at_end"] = foreign_load()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps({k: out[k] for k in ("best_jobs_per_s", "grouped_vs_plain")}, indent=2))


if __name__ == "__main__":
    main()
