"""A schedule due every second, for a minute: how many runs, and how late each started.

    .venv/bin/python -m bench.schedules [--seconds 60]

Starts its own Redis and PostgreSQL (project.localdev), migrates, installs the schedule
`* * * * * *` for the `ping` job, runs one real beat and one real worker, and reads every
run's job back from the registry: its due time is in its id, its start is processedOn.
Prints JSON and a table; writes nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time

from project.localdev import BASE_DIR, private_services


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()

    with private_services("jobyard-bench-sched-") as (redis, postgres, _):
        env = {**os.environ, "REDIS_URL": redis.url, "DATABASE_URL": postgres.url(),
               "DJANGO_SETTINGS_MODULE": "project.settings", "LOG_LEVEL": "WARNING"}  # fmt: skip
        os.environ.update(env)
        children: list[subprocess.Popen] = []
        try:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=BASE_DIR, check=True
            )
            import django

            django.setup()
            from tasks import Queue, get_job
            from tasks.scheduling.service import install_schedule

            quiet = {
                "stdout": subprocess.DEVNULL,
                "stderr": subprocess.DEVNULL,
                "start_new_session": True,
            }
            children.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", "default", "-c", "2",
                 "--without-gossip", "--without-mingle", "-l", "WARNING"], env=env, cwd=BASE_DIR, **quiet))  # fmt: skip
            time.sleep(3)  # the worker is ready before the first run is due
            install_schedule("bench-every-second", "ping", {}, cron="* * * * * *")
            children.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "project", "beat", "-S",
                 "tasks.scheduling.beat:JobyardScheduler", "--pidfile=", "-l", "WARNING"],
                env=env, cwd=BASE_DIR, **quiet))  # fmt: skip
            time.sleep(3)  # beat start-up
            window_start = time.time()
            time.sleep(args.seconds + 2)
            window_end = window_start + args.seconds
            runs = []
            for job in Queue("default").get_jobs(["completed", "active", "waiting"], 0, 10_000):
                if not job.id.startswith("sched."):
                    continue
                due = int(job.id.rsplit(".", 1)[1]) / 1000
                if window_start <= due < window_end:
                    full = get_job("default", job.id)
                    runs.append((due, full.created_at / 1000, (full.processed_on or 0) / 1000))
            runs.sort()
            enqueue_late = [(created - due) * 1000 for due, created, _ in runs]
            start_late = [(started - due) * 1000 for due, _, started in runs if started]
            result = {
                "window_s": args.seconds,
                "runs": len(runs),
                "distinct_due_seconds": len({int(d) for d, _, _ in runs}),
                "within_1s_of_due": sum(1 for ms in start_late if 0 <= ms < 1000),
                "enqueue_after_due_ms": {"p50": round(_percentile(enqueue_late, 0.5), 1),
                                         "p99": round(_percentile(enqueue_late, 0.99), 1),
                                         "max": round(max(enqueue_late), 1)},
                "start_after_due_ms": {"p50": round(_percentile(start_late, 0.5), 1),
                                       "p99": round(_percentile(start_late, 0.99), 1),
                                       "max": round(max(start_late), 1)},
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            }  # fmt: skip
            print(json.dumps(result, indent=2))
        finally:
            for child in children:
                if child.poll() is None:
                    os.killpg(child.pid, signal.SIGTERM)
            for child in children:
                try:
                    child.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
