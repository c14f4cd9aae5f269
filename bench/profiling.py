"""CPU-profile evidence with cProfile: producers in-process, solo workers as children.

The claim checked: stock kombu builds a redis-py client (`redis.client.Redis.__init__`) for
every operation outside its event loop (each publish; each ack in a worker), and that
constructor is a large share of the CPU. The figures are cumulative shares of a profiled
region: the whole loop for a producer; for a worker, its main thread from worker_ready to
shutdown (bench/profiled_worker.py) less the time it sat idle in epoll.
"""

from __future__ import annotations

import cProfile
import inspect
import pstats
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from bench import common

#: (file, first line, name) of redis.client.Redis.__init__, as cProfile names it (the
#: function under its deprecation decorator).
_INIT_CODE = inspect.unwrap(redis.Redis.__init__).__code__
REDIS_INIT = (_INIT_CODE.co_filename, _INIT_CODE.co_firstlineno, _INIT_CODE.co_name)
#: What a worker waits in when it has nothing to do: left out of its busy time.
IDLE = "<method 'poll' of 'select.epoll' objects>"


def _key_name(key: tuple[str, int, str]) -> str:
    file, line, name = key
    if file == "~":
        return name
    short = file
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in file:
            short = file.split(marker, 1)[1]
            break
    return f"{short}:{line}({name})"


def _find(stats: pstats.Stats, match: Callable[[tuple[str, int, str]], bool]):
    return [(k, v) for k, v in stats.stats.items() if match(k)]  # type: ignore[attr-defined]


def _cum(stats: pstats.Stats, match) -> tuple[float, int]:
    """Cumulative seconds and calls of the functions matching (outermost calls only)."""
    found = _find(stats, match)
    return sum(v[3] for _, v in found), sum(v[1] for _, v in found)


def _top(stats: pstats.Stats, total: float, by: int, limit: int = 15) -> list[dict]:
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][by], reverse=True)  # type: ignore[attr-defined]
    out = []
    for key, (_cc, nc, tt, ct, _callers) in rows:
        if key == ("~", 0, IDLE):
            continue
        out.append(
            {
                "function": _key_name(key),
                "calls": nc,
                "tottime_share": round(tt / total, 4),
                "cumtime_share": round(ct / total, 4),
            }
        )
        if len(out) == limit:
            break
    return out


def _is_redis_init(key) -> bool:
    return key == REDIS_INIT


def summarize(stats: pstats.Stats, total: float, jobs: int, extra: dict | None = None) -> dict:
    init_s, init_calls = _cum(stats, _is_redis_init)
    out = {
        "profiled_s": total,
        "jobs": jobs,
        "redis_init_calls": init_calls,
        "redis_init_calls_per_job": init_calls / jobs,
        "redis_init_cum_share": init_s / total if total else 0.0,
        "redis_init_us_per_call": init_s / init_calls * 1e6 if init_calls else 0.0,
        "top_tottime": _top(stats, total, by=2),
        "top_cumtime": _top(stats, total, by=3),
    }
    for name, match in (extra or {}).items():
        seconds, calls = _cum(stats, match)
        out[f"{name}_cum_share"] = seconds / total if total else 0.0
        out[f"{name}_calls"] = calls
    return out


def profile_loop(fn: Callable[[], object], jobs: int, out: Path, extra=None) -> dict:
    """Profile `fn()` (which sends `jobs` jobs) in this process."""
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    fn()
    profiler.disable()
    wall = time.perf_counter() - start
    profiler.dump_stats(out)
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    return {**summarize(stats, total, jobs, extra), "profiled_jobs_per_s": jobs / wall}


# --- workers ------------------------------------------------------------------------------


def profile_worker(
    app: str,
    queue: str,
    env: dict[str, str],
    drained: Callable[[], bool],
    jobs: int,
    out: Path,
    extra=None,
    timeout: float = 300,
) -> dict:
    """A `-P solo` worker, profiled from ready to shutdown, drains `jobs` pre-filled jobs.

    Shares are of the busy time: everything profiled but the waits in epoll.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.profiled_worker", "-A", app, "worker",
         *common.WORKER_COMMON, "-Q", queue, "-n", f"prof-{app}@%h", *common.SOLO],
        cwd=common.ROOT, env={**env, "BENCH_PROFILE_OUT": str(out)},
        stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        start = time.perf_counter()
        deadline = time.monotonic() + timeout
        while not drained():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"profiled {app} worker did not drain {jobs} jobs")
            time.sleep(0.02)
        wall = time.perf_counter() - start
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        common.stop_workers([proc])
    stats = pstats.Stats(str(out))
    idle, _ = _cum(stats, lambda k: k == ("~", 0, IDLE))
    total = sum(v[2] for v in stats.stats.values()) - idle  # type: ignore[attr-defined]
    return {**summarize(stats, total, jobs, extra), "wall_s_incl_startup": wall}
