"""The HTTP API's status endpoints with a big registry: p50/p99 latency, one command.

    .venv/bin/python -m bench.api_status [--jobs 1000000] [--requests 2000] [--clients 1,4]

Starts its own Redis and PostgreSQL (free loopback ports, data in a temporary folder),
migrates, creates a read token, fills the registry with --jobs waiting jobs through
tasks.enqueue_bulk, starts gunicorn as the Procfile does (2 workers x 8 threads, DEBUG off),
then times each status endpoint over keep-alive HTTP connections, from 1 and from 4
concurrent clients. Everything it started it stops by pid. Results: printed as a markdown
table and written to bench/results/api_status.json; docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from project.localdev import free_port, private_services

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "api_status.json"
PROBE_ID = "bench-probe"
ENDPOINTS = [
    "/api/admin/jobs/status",
    "/api/v1/queues",
    "/api/v1/queues/default",
    "/api/v1/queues/default/stats",
    f"/api/v1/jobs/default/{PROBE_ID}",
]
#: Jobs per enqueue_bulk call: bounded memory in this process whatever --jobs is.
FILL_CHUNK = 20_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))  # fmt: skip
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "ram_gib": round(mem_kib / 2**20, 1),
            "python": platform.python_version(), "platform": platform.platform()}  # fmt: skip


def fill(jobs: int) -> float:
    """Enqueue `jobs` waiting ping jobs on `default` (one of them PROBE_ID); seconds taken."""
    from tasks import enqueue, enqueue_bulk

    started = time.perf_counter()
    enqueue("ping", {}, job_id=PROBE_ID)
    done = 1
    while done < jobs:
        size = min(FILL_CHUNK, jobs - done)
        enqueue_bulk([("ping", {})] * size)
        done += size
        if done % 200_000 < FILL_CHUNK:
            log(f"  {done:,} jobs ({done / (time.perf_counter() - started):,.0f}/s)")
    return time.perf_counter() - started


def measure(port: int, path: str, token: str, requests: int, clients: int) -> dict[str, float]:
    """Latency of GET `path` in ms over `clients` keep-alive connections, `requests` each."""
    samples: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"}
        mine = []
        for i in range(requests + 20):
            start = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = (time.perf_counter() - start) * 1000
            if response.status != 200:
                errors.append(f"{path}: {response.status}")
                return
            if i >= 20:  # the first few warm the connection and the worker
                mine.append(elapsed)
        conn.close()
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2),
            "max_ms": round(max(samples), 2), "requests": len(samples),
            "per_s": round(len(samples) / wall)}  # fmt: skip


def wait_listening(port: int, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not listen on {port} within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_status", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000, help="per client and endpoint")
    parser.add_argument("--clients", default="1,4", help="concurrent clients, comma-separated")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=8)
    parser.add_argument("--no-write", action="store_true", help="do not write the JSON file")
    args = parser.parse_args()

    gunicorn: subprocess.Popen | None = None
    with private_services("jobyard-bench-api-") as (redis_server, postgres, _):
        try:
            env = {**os.environ, "DATABASE_URL": postgres.url(), "REDIS_URL": redis_server.url,
                   "DJANGO_SETTINGS_MODULE": "project.settings", "DEBUG": "false",
                   "SECRET_KEY": "bench-only-secret-key-" + "x" * 40, "ALLOWED_HOSTS": "127.0.0.1",
                   "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "WARNING", "LOG_FORMAT": "json"}  # fmt: skip
            os.environ.update(env)
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env,
                           check=True)  # fmt: skip
            token = subprocess.run(
                [sys.executable, "manage.py", "api_token", "create", "bench", "--scope", "read"],
                cwd=ROOT, env=env, check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip

            import django

            django.setup()
            from tasks import Queue

            log(f"filling the registry with {args.jobs:,} waiting jobs")
            fill_s = fill(args.jobs)
            counts = Queue("default").counts()
            from tasks.connection import get_redis

            redis_mb = get_redis().info("memory")["used_memory"] / 2**20
            log(f"  done in {fill_s:.0f} s; default: {counts}; Redis {redis_mb:,.0f} MiB")

            port = free_port()
            gunicorn = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{port}",
                 "--workers", str(args.web_workers), "--threads", str(args.web_threads)],
                cwd=ROOT, env=env, start_new_session=True,
            )  # fmt: skip
            wait_listening(port)
            results: dict[str, dict[str, Any]] = {}
            for clients in [int(c) for c in args.clients.split(",")]:
                for path in ENDPOINTS:
                    figures = measure(port, path, token, args.requests, clients)
                    results.setdefault(path, {})[f"{clients}_clients"] = figures
                    log(f"  {path:<40} {clients} client(s): p50 {figures['p50_ms']} ms, "
                        f"p99 {figures['p99_ms']} ms, {figures['per_s']}/s")  # fmt: skip
            out = {"machine": machine(), "jobs": args.jobs, "fill_s": round(fill_s, 1),
                   "redis_used_mib": round(redis_mb), "counts": counts,
                   "gunicorn": {"workers": args.web_workers, "threads": args.web_threads},
                   "requests_per_client": args.requests, "results": results,
                   "date": time.strftime("%Y-%m-%d")}  # fmt: skip
            print(markdown(out))
            if not args.no_write:
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(out, indent=2) + "\n")
                log(f"wrote {RESULTS.relative_to(ROOT)}")
        finally:  # gunicorn first: the servers stop after it
            if gunicorn is not None and gunicorn.poll() is None:
                gunicorn.send_signal(signal.SIGTERM)
                try:
                    gunicorn.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(gunicorn.pid, signal.SIGKILL)
                    gunicorn.wait()


def markdown(out: dict[str, Any]) -> str:
    m = out["machine"]
    lines = [
        f"{out['jobs']:,} waiting jobs in `default`; gunicorn {out['gunicorn']['workers']} "
        f"workers x {out['gunicorn']['threads']} threads; {out['requests_per_client']:,} "
        f"requests per client and endpoint; {m['nproc']} cores ({m['cpu_model']}), "
        f"{m['ram_gib']} GiB RAM; {out['date']}.",
        "",
        "| endpoint | clients | p50 ms | p99 ms | max ms | requests/s |",
        "|---|---|---|---|---|---|",
    ]
    for path, by_clients in out["results"].items():
        for clients, f in by_clients.items():
            lines.append(f"| `GET {path}` | {clients.split('_')[0]} | {f['p50_ms']} | "
                         f"{f['p99_ms']} | {f['max_ms']} | {f['per_s']} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
