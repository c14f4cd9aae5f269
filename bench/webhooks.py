"""Webhook delivery throughput: N deliveries to a local receiver that answers in 20 ms.

    .venv/bin/python -m bench.webhooks --procfile [--deliveries 10000]
    .venv/bin/python -m bench.webhooks [--deliveries 10000] [--pool prefork] [--concurrency 20]

Starts a private Redis and PostgreSQL (project.localdev.private_services), migrates, starts
a receiver on 127.0.0.1 (a ThreadingHTTPServer sleeping 20 ms per request) and one worker
(WEBHOOK_ALLOW_PRIVATE=true): with `--procfile`, the Procfile line that consumes `webhooks`
as deployed (`worker_io`: its queues, -P threads, `-c ${WORKER_IO_CONCURRENCY:-50}`), else `celery -A project worker -Q
webhooks` with the pool and concurrency asked for. It creates the deliveries (rows, then
`deliver-webhook` jobs in bulk) and times until every row is `delivered`. Results, with the
machine, the load average and the commit: bench/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "webhooks.json"


class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(0.02)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def procfile_worker_args(queue: str = "webhooks") -> list[str]:
    """The `celery worker` options of the Procfile line consuming `queue`, its
    ${VAR:-default}s read from the environment as a shell would
    (`-Q email,notifications,webhooks -P threads -c 50 ...`)."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    commands = [line.split(": ", 1)[1] for line in lines if " worker " in line]
    (command,) = [c for c in commands if queue in re.search(r"-Q (\S+)", c)[1].split(",")]
    command = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m[1], m[2]), command)
    words = shlex.split(command)
    assert words[:4] == ["celery", "-A", "project", "worker"], words
    return words[4:]


def git_head() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True)  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()  # fmt: skip
    return done.stdout.strip() + ("+uncommitted" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--procfile", action="store_true",
                        help="run the Procfile's worker line (pool and concurrency ignored)")  # fmt: skip
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()
    from project.localdev import private_services

    with private_services("jobyard-bench-webhooks-") as (redis, postgres, tmp):
        env = {**os.environ, "DATABASE_URL": postgres.url(), "REDIS_URL": redis.url,
               "DJANGO_SETTINGS_MODULE": "project.settings", "DEBUG": "true",
               "WEBHOOK_ALLOW_PRIVATE": "true", "LOG_FORMAT": "json"}  # fmt: skip
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env,
                       check=True)  # fmt: skip
        os.environ.update(env)
        import django

        django.setup()
        import tasks
        from notifications.models import Delivery, Endpoint

        server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        endpoint = Endpoint.objects.create(
            url=f"http://127.0.0.1:{server.server_address[1]}/hook", secret="s" * 32,
            event_types=["ping"],
        )  # fmt: skip
        log = open(tmp / "worker.log", "w")  # noqa: SIM115
        if args.procfile:
            options = procfile_worker_args()
            pool = options[options.index("-P") + 1] if "-P" in options else "prefork"
            concurrency = int(options[options.index("-c") + 1])
        else:
            options = ["-Q", "webhooks", "-P", args.pool, "-c", str(args.concurrency),
                       "-n", "bench@%h", "--without-gossip"]  # fmt: skip
            pool, concurrency = args.pool, args.concurrency
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "project", "worker", *options, "-l", "WARNING"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        load_before = os.getloadavg()[0]
        try:
            time.sleep(8)  # the worker's start
            rows = Delivery.objects.bulk_create(
                Delivery(endpoint=endpoint, event_type="ping", event_id=f"bench_{i}",
                         payload={"i": i}) for i in range(args.deliveries)
            )  # fmt: skip
            started = time.monotonic()
            for start in range(0, len(rows), 1000):
                tasks.enqueue_bulk([("deliver-webhook", {"delivery_id": d.pk},
                                     {"job_id": f"delivery-{d.pk}"}) for d in rows[start:start + 1000]])  # fmt: skip
            done = 0
            while done < args.deliveries and time.monotonic() - started < args.timeout:
                time.sleep(0.5)
                done = Delivery.objects.filter(status="delivered").count()
            elapsed = time.monotonic() - started
            failed = Delivery.objects.filter(status="failed").count()
        finally:
            worker.terminate()
            worker.wait(60)
            server.shutdown()
        result = {
            "deliveries": args.deliveries, "delivered": done, "failed": failed,
            "worker": " ".join(options), "pool": pool, "concurrency": concurrency,
            "seconds": round(elapsed, 2),
            "perSecond": round(done / elapsed, 1), "receiverMs": 20,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
            "python": platform.python_version(), "commit": git_head(),
            "loadAverage": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }  # fmt: skip
        print(json.dumps(result))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        RESULTS.write_text(json.dumps([*previous, result], indent=2) + "\n")
        if done < args.deliveries:
            print((tmp / "worker.log").read_text()[-3000:], file=sys.stderr)


if __name__ == "__main__":
    main()
