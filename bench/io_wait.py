"""The I/O-bound drain: N jobs that each wait 20 ms on a local HTTP server, concurrency 50.

    .venv/bin/python -m bench.io_wait [--n 20000] [--systems jobyard-gevent,celery-gevent,...]

Needs the bench extra (`pip install -e ".[bench]"`: Dramatiq) and, for BullMQ, Node 20+
(bench/bullmq/install.sh). Starts its own redis-server on a free loopback port and the
waiting server (bench/http_wait.py: asyncio, keep-alive, 20 ms per request) on another,
then for each system: empties Redis, pre-fills N jobs, starts ONE worker process with 50
concurrent slots, and times from the first request the server answers to the N-th (and the
system's own queue empty: Jobyard's N completions in its statistics, Celery's lists and
`unacked`, Dramatiq's message hash). Every Python job does the same GET on a keep-alive
connection per thread (bench/http_wait.get); BullMQ's uses a keep-alive agent.

| system | worker |
|---|---|
| jobyard-gevent / jobyard-threads | `celery -A project worker -P gevent|threads -c 50` (bench.settings) |
| celery-gevent / celery-threads | `celery -A bench.celery_noop_app worker -P gevent|threads -c 50` (stock kombu) |
| dramatiq | `dramatiq bench.dramatiq_app -p 1 -t 50` |
| bullmq | `node bench/bullmq/bench.js --step drain --concurrency 50 --http-url URL` |

Writes bench/results/io_wait.json (with the machine and the load average before each
system: the machine is shared) and prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from project.localdev import RedisServer, free_port  # noqa: E402

SYSTEMS = ["jobyard-gevent", "jobyard-threads", "celery-gevent", "celery-threads", "dramatiq",
           "bullmq"]  # fmt: skip
CONCURRENCY = 50


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--output", default=str(ROOT / "bench/results/io_wait.json"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jobyard-bench-io-"))
    server = RedisServer(free_port(), tmp / "redis", persistent=False)
    http_port = free_port()
    waiter = subprocess.Popen([sys.executable, "-m", "bench.http_wait", str(http_port)],
                              cwd=ROOT, start_new_session=True)  # fmt: skip
    try:
        server.start()
        url = server.url
        os.environ.update(REDIS_URL=url, BENCH_REDIS_URL=url,
                          DJANGO_SETTINGS_MODULE="bench.settings",
                          DATABASE_URL="sqlite://:memory:", LOG_LEVEL="WARNING")  # fmt: skip
        import django

        django.setup()
        from bench.run import foreign_load, machine

        http_url = f"http://127.0.0.1:{http_port}/wait"
        results: dict[str, Any] = {
            "n": args.n, "concurrency": CONCURRENCY, "wait_ms": 20,
            "machine": machine(_redis(url), True), "systems": {},
        }  # fmt: skip
        for system in args.systems.split(","):
            load = foreign_load()
            # The CPU its worker processes used, from start to stop (they are waited for):
            # what one job costs the system, whatever else loads the machine.
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            try:
                figures = RUNNERS[system](url, http_url, args.n, args.timeout)
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                figures = {"error": f"{type(exc).__name__}: {exc}"}
            else:
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                figures["worker_cpu_us_per_job"] = round(cpu / args.n * 1e6)
            figures["load_before"] = load
            results["systems"][system] = figures
            print(f"{system}: {figures}", file=sys.stderr, flush=True)
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
        print(table(results))
    finally:
        waiter.terminate()
        waiter.wait(10)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _redis(url: str):
    import redis

    return redis.Redis.from_url(url)


def _served(http_url: str) -> int:
    from bench.http_wait import count

    return count(http_url)


def timed_drain(http_url: str, n: int, drained, procs: list[subprocess.Popen],
                timeout: float) -> dict[str, float]:  # fmt: skip
    """From the first request the server answers to the N-th, and `drained()`."""
    from bench.common import POLL_S
    from bench.http_wait import count

    base = _served(http_url)
    count(http_url, "most")
    spawned = time.perf_counter()
    first = None
    most = 0
    deadline = time.monotonic() + timeout
    while True:
        served = _served(http_url) - base
        most = max(most, count(http_url, "most"))
        now = time.perf_counter()
        if first is None and served > 0:
            first = now
        if served >= n and drained():
            end = now
            break
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a worker exited with {[p.poll() for p in procs]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {served}/{n} requests served in {timeout:g} s")
        time.sleep(POLL_S)
    return {"jobs_per_s": n / (end - first), "drain_s": end - first,
            "startup_s": first - spawned, "most_requests_at_once": most}  # fmt: skip


def jobyard(pool: str):
    def run(url: str, http_url: str, n: int, timeout: float) -> dict[str, float]:
        import tasks
        from bench import common
        from bench import jobyard_bench as jy

        r = jy.client()
        jy.warm_up(r)
        for i in range(0, n, 1000):
            tasks.enqueue_bulk([("bench-http-wait", {"url": http_url})
                                for _ in range(min(1000, n - i))])  # fmt: skip
        poll = jy.probe(r, n, int(time.time() // 60))
        procs = common.start_workers(jy.APP_MODULE, jy.QUEUE,
                                     ("-P", pool, "-c", str(CONCURRENCY)), jy.worker_env(),
                                     tag="jy")  # fmt: skip
        try:
            return timed_drain(http_url, n, lambda: poll()[1], procs, timeout)
        finally:
            common.stop_workers(procs)

    return run


def celery(pool: str):
    def run(url: str, http_url: str, n: int, timeout: float) -> dict[str, float]:
        from celery import group

        from bench import baseline_celery as cel
        from bench import common

        r = cel.client()
        cel.flush(r)
        task = cel.app.tasks["bench.http_wait"]
        for i in range(0, n, 1000):
            group([task.s(http_url) for _ in range(min(1000, n - i))]).apply_async()
        poll = cel.probe(r)
        procs = common.start_workers(cel.APP_MODULE, cel.QUEUE,
                                     ("-P", pool, "-c", str(CONCURRENCY)), cel.worker_env(),
                                     tag="cel")  # fmt: skip
        try:
            return timed_drain(http_url, n, lambda: poll()[1], procs, timeout)
        finally:
            common.stop_workers(procs)

    return run


def dramatiq(url: str, http_url: str, n: int, timeout: float) -> dict[str, float]:
    from bench import common

    r = _redis(url)
    r.flushall()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    from bench.dramatiq_app import QUEUE, broker, http_wait

    pipe_size = 1000
    for i in range(0, n, pipe_size):
        # The actor's own send(), as a Dramatiq user sends: one round trip per message.
        for _ in range(min(pipe_size, n - i)):
            http_wait.send(http_url)
    broker.close()
    procs = [subprocess.Popen(
        [str(Path(sys.executable).parent / "dramatiq"), "bench.dramatiq_app", "-p", "1",
         "-t", str(CONCURRENCY), "-Q", QUEUE],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )]  # fmt: skip

    def drained() -> bool:
        return not r.llen(f"dramatiq:{QUEUE}") and not r.hlen(f"dramatiq:{QUEUE}.msgs")

    try:
        return timed_drain(http_url, n, drained, procs, timeout)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        common.log("dramatiq stopped")


def bullmq(url: str, http_url: str, n: int, timeout: float) -> dict[str, float]:
    from bench.run import bullmq as run_bullmq
    from bench.run import bullmq_ready

    if not bullmq_ready(install=True):
        raise RuntimeError("node/npm not available")
    _redis(url).flushall()
    return run_bullmq(url, "drain", n=n, concurrency=CONCURRENCY, http_url=http_url,
                      timeout=timeout)  # fmt: skip


RUNNERS = {
    "jobyard-gevent": jobyard("gevent"), "jobyard-threads": jobyard("threads"),
    "celery-gevent": celery("gevent"), "celery-threads": celery("threads"),
    "dramatiq": dramatiq, "bullmq": bullmq,
}  # fmt: skip


def table(results: dict[str, Any]) -> str:
    rows = [
        "| system | jobs/s | drain s | most at once | worker CPU µs/job | load before (1 min) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for system, f in results["systems"].items():
        if "error" in f:
            rows.append(f"| {system} | error: {f['error']} | | | | |")
            continue
        load = f["load_before"]
        load_1m = load["loadavg"][0]
        rows.append(
            f"| {system} | {f['jobs_per_s']:,.0f} | {f['drain_s']:.1f} | "
            f"{f['most_requests_at_once']} | {f.get('worker_cpu_us_per_job', '?')} | "
            f"{load_1m} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
