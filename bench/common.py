"""Helpers shared by the Celery, Jobyard and BullMQ drivers: workers, polling, statistics.

Nothing here imports Django or a Celery app: the drivers pass in what they measure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
WORKER_COMMON = ("--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning")
PREFORK_2 = ("-P", "prefork", "-c", "2")
SOLO = ("-P", "solo")
#: The project's broker transport options; the plain Celery app uses the same.
TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "queue_order_strategy": "priority",
    "priority_steps": list(range(10)),
    "sep": ":",
}
#: How often a drain is polled; the same for every system (one pipelined round trip).
POLL_S = 0.005


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def queue_keys(queue: str) -> list[str]:
    """kombu's Redis lists for a queue under TRANSPORT_OPTIONS: priority p in '<queue>:<p>'."""
    sep = TRANSPORT_OPTIONS["sep"]
    return [f"{queue}{sep}{p}" if p else queue for p in TRANSPORT_OPTIONS["priority_steps"]]


def broker_backlog_cmds(pipe, queue: str) -> None:
    """Queue on `pipe`: LLEN of each priority list, then HLEN of kombu's `unacked` hash."""
    for key in queue_keys(queue):
        pipe.llen(key)
    pipe.hlen("unacked")


def broker_backlog(r: redis.Redis, queue: str) -> tuple[int, int]:
    """(messages waiting in the queue's lists, messages delivered but not yet acked)."""
    pipe = r.pipeline(transaction=False)
    broker_backlog_cmds(pipe, queue)
    *lens, unacked = pipe.execute()
    return sum(lens), unacked


def used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def percentiles(values: Sequence[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": q[49],
        "p95": q[94],
        "p99": q[98],
        "max": max(values),
        "mean": statistics.fmean(values),
        "n": len(values),
    }


def time_calls(fn: Callable[[], object], calls: int) -> dict[str, float]:
    """Call `fn` `calls` times; ms per call: median, p99, max."""
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {"median_ms": statistics.median(samples), "p99_ms": q[98], "max_ms": max(samples)}


def start_workers(
    app: str,
    queue: str,
    worker_args: Sequence[str],
    env: dict[str, str],
    count: int = 1,
    prefix: Sequence[str] = (),
    tag: str = "bench",
) -> list[subprocess.Popen[bytes]]:
    """`count` `celery -A app worker` processes, each in its own session, distinct -n names."""
    return [
        subprocess.Popen(
            [
                sys.executable,
                *prefix,
                "-m",
                "celery",
                "-A",
                app,
                "worker",
                *WORKER_COMMON,
                "-Q",
                queue,
                "-n",
                f"{tag}{i}-{os.getpid()}@%h",
                *worker_args,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        for i in range(count)
    ]


def stop_workers(procs: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """Warm shutdown (SIGTERM) by pid; then SIGKILL what is left of each one's group."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        # Prefork children of a main process that died are in its group: ours too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    found += [int(child), *_descendants(int(child))]
    return found


def cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU seconds used so far by `procs` and their live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in procs:
        for pid in [p.pid, *_descendants(p.pid)]:
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def redis_cpu_seconds(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def command_stats(r: redis.Redis) -> dict[str, tuple[int, int]]:
    """INFO commandstats: command -> (calls, usec). Commands run by scripts count too."""
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in r.info("commandstats").items()
    }


def command_delta(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], n: int
) -> dict[str, dict[str, float]]:
    """Per job: calls and Redis-side microseconds of each command, busiest first."""
    rows = {}
    for name, (calls, usec) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if calls - c0 > 0:
            rows[name] = {
                "calls_per_job": round((calls - c0) / n, 3),
                "usec_per_job": round((usec - u0) / n, 2),
            }
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["usec_per_job"]))


def wait_drained(
    poll: Callable[[], tuple[int, bool]],
    n: int,
    procs: list[subprocess.Popen[bytes]],
    spawned: float,
    timeout: float,
    r: redis.Redis,
) -> dict[str, float]:
    """Poll until drained: times, and the CPU workers and Redis used from first fetch to end.

    `poll()` returns (messages still in the broker lists, drained?). The first fetch is the
    first poll that sees fewer than `n` messages in the lists.
    """
    first = None
    cpu0 = (0.0, 0.0)
    commands0 = command_stats(r)  # before any worker started: the whole drain's commands
    while True:
        waiting, drained = poll()
        now = time.perf_counter()
        if first is None and waiting < n:
            first = now
            cpu0 = (cpu_seconds(procs), redis_cpu_seconds(r))
        if drained:
            cpu1 = (cpu_seconds(procs), redis_cpu_seconds(r))
            first = first if first is not None else now
            return {
                **drain_figures(n, spawned, first, now),
                "worker_cpu_us_per_job": (cpu1[0] - cpu0[0]) / n * 1e6,
                "redis_cpu_us_per_job": (cpu1[1] - cpu0[1]) / n * 1e6,
                "redis_commands_per_job": command_delta(commands0, command_stats(r), n),
            }
        if now - spawned > timeout:
            raise RuntimeError(f"drain timed out: {waiting} messages still in the lists")
        dead = [p.pid for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"worker(s) {dead} exited during the drain")
        time.sleep(POLL_S)


def drain_figures(n: int, spawned: float, first: float, end: float) -> dict[str, float]:
    return {
        "jobs_per_s": n / (end - first),
        "drain_s": end - first,
        "startup_s": first - spawned,
        "jobs_per_s_incl_startup": n / (end - spawned),
    }


@contextlib.contextmanager
def migrated_private_services(prefix: str, root: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A private Redis and PostgreSQL (project/localdev.py), migrated, and the environment a
    child process runs the project against them with (production-like settings, MEDIA_ROOT
    in the temporary folder); stopped on exit. For the memory benches, whose figures come
    from a fresh child process per size."""
    sys.path.insert(0, str(root))
    from project.localdev import private_services

    with private_services(prefix) as (redis_server, postgres, tmp):
        env = {**os.environ, "DATABASE_URL": postgres.url(), "REDIS_URL": redis_server.url,
               "DJANGO_SETTINGS_MODULE": "project.settings", "DEBUG": "false",
               "SECRET_KEY": "bench-only-secret-key-" + "x" * 40, "ALLOWED_HOSTS": "127.0.0.1",
               "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "WARNING",
               "MEDIA_ROOT": str(tmp / "media")}  # fmt: skip
        (tmp / "media").mkdir()
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env,
                       check=True)  # fmt: skip
        yield env, tmp
