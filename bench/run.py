"""Jobyard's performance benchmark, one command: plain Celery, Jobyard and BullMQ side by side.

    .venv/bin/python -m bench.run [--n 20000] [--quick] [--rounds 1] [--only a,b,c,d,e,p]
                                  [--no-bullmq] [--no-profile] [--wait-quiet SECONDS]

Starts its own redis-server on a free loopback port (no persistence), flushes it before each
measurement, prints a table and writes bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from project.localdev import RedisServer, free_port

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
BULLMQ_DIR = BENCH_DIR / "bullmq"
RESULTS_DIR = BENCH_DIR / "results"
#: cProfile dumps (binary, large): outside the repository unless --profiles-dir says otherwise.
PROFILES_DIR = Path(tempfile.gettempdir()) / "jobyard-bench-profiles"

TARGETS = {
    "bulk_jobs_per_s": 10_000,
    "drain_ratio": 0.85,
    "latency_p50_delta_ms": 1.0,
    "latency_p99_ratio": 2.0,
    "inspect_ms": 10.0,
    "bytes_per_waiting_job": 700,
}
#: Tracked plain Celery tasks waiting in e): sent as Celery sends them, a few hundred a second.
PLAIN_MANY_N = 10_000


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def machine_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Average number of busy cores between two machine_cpu() readings."""
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total * (os.cpu_count() or 1), 2) if total else 0.0


def foreign_load() -> dict[str, Any]:
    """What else runs here: the load average and the busiest processes not started by us."""
    mine = {os.getpid()}
    rows = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if int(stat[1]) != os.getpid() and cmd:
                rows.append((int(stat[11]) + int(stat[12]), cmd.strip()[:120]))
    rows.sort(reverse=True)
    return {
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "top_cpu_processes": [r[1] for r in rows[:5]],
    }


class Runner:
    """Runs named steps, each from an empty Redis; a failing step is recorded, not fatal."""

    def __init__(self, redis_client) -> None:
        self.r = redis_client
        self.errors: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        #: Cores busy on the whole machine during each step (ours and anyone else's).
        self.busy: dict[str, float] = {}

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        log(f"{name} ...")
        self.r.flushall()
        start = time.perf_counter()
        cpu0 = machine_cpu()
        try:
            value = fn()
        except Exception as exc:  # one broken step must not lose the others' figures
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"{name} FAILED: {self.errors[name]}")
            traceback.print_exc()
            value = None
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 2)
            self.busy[name] = machine_busy(cpu0, machine_cpu())
            self.r.flushall()
        if value is not None:
            log(f"{name}: {json.dumps(value, default=str)[:300]}")
        return value


# --- BullMQ ------------------------------------------------------------------------------


def bullmq_ready(install: bool) -> bool:
    if (BULLMQ_DIR / "node_modules" / "bullmq").is_dir():
        return True
    if not install or not shutil.which("node") or not shutil.which("npm"):
        return False
    log("installing BullMQ (bench/bullmq/install.sh)")
    result = subprocess.run([str(BULLMQ_DIR / "install.sh")], capture_output=True, text=True)
    if result.returncode != 0:
        log(f"BullMQ install failed: {result.stderr[-2000:]}")
    return (BULLMQ_DIR / "node_modules" / "bullmq").is_dir()


def bullmq(url: str, step: str, timeout: float = 900, **options: Any) -> Any:
    args = ["node", str(BULLMQ_DIR / "bench.js"), "--redis-url", url, "--step", step]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(args, cwd=BULLMQ_DIR, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"bench.js --step {step} exited {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


# --- machine -------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip()


def machine(r, with_bullmq: bool) -> dict[str, Any]:
    import celery
    import django
    import kombu
    import redis

    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    bullmq_version = None
    if with_bullmq:
        package = json.loads((BULLMQ_DIR / "node_modules" / "bullmq" / "package.json").read_text())
        bullmq_version = package["version"]
    dirty = _git("status", "--porcelain", "--", "tasks", "project")
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_gib": _mem_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_server": r.info("server")["redis_version"],
        "redis_py": redis.__version__,
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "django": django.__version__,
        "node": node or None,
        "bullmq": bullmq_version,
        "git_head": _git("rev-parse", "HEAD"),
        "tasks_or_project_modified": bool(dirty),
        "modified_files": dirty.splitlines(),
    }


# --- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    os.environ.update(
        REDIS_URL=url,
        BENCH_REDIS_URL=url,
        DJANGO_SETTINGS_MODULE="bench.settings",
        # Nothing measured touches the database; a URL that cannot reach a server is safest.
        DATABASE_URL="sqlite://:memory:",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from bench import baseline_celery as cel
    from bench import common, profiling
    from bench import jobyard_bench as jy

    r = jy.client()
    runner = Runner(r)
    step = runner.step
    with_bullmq = not args.no_bullmq and bullmq_ready(install=True)
    n, lat_n, spacing = args.n, args.latency_n, args.spacing_ms / 1000
    many_n = args.many_n or (100_000 if args.quick else 1_000_000)
    out: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {"n": n, "latency_n": lat_n, "spacing_ms": args.spacing_ms,
                   "rounds": args.rounds, "only": args.only or "abcdep",
                   "many_n": many_n, "quick": args.quick, "bullmq": with_bullmq,
                   "poll_ms": common.POLL_S * 1000,
                   "profiles_dir": None if args.no_profile else str(args.profiles_dir)},
        "machine": machine(r, with_bullmq),
        "load_at_start": foreign_load(),
    }  # fmt: skip

    def bull(name: str, **kw: Any) -> Any:
        return bullmq(url, name, **kw) if with_bullmq else None

    sections = set(args.only.split(",")) if args.only else set("abcdep")

    def section(letter: str, fn: Callable[[], Any]) -> Any:
        return fn() if letter in sections else None

    # a) single enqueue
    out["single_enqueue_jobs_per_s"] = section("a", lambda: {
        "celery": step("single/celery", lambda: cel.single_enqueue(r, n)),
        "jobyard": step("single/jobyard", lambda: jy.single_enqueue(r, n)),
        "bullmq": step("single/bullmq", lambda: bull("single", n=n)),
    })  # fmt: skip
    # b) bulk enqueue
    out["bulk_enqueue_jobs_per_s"] = section("b", lambda: {
        "celery_group": step("bulk/celery-group", lambda: cel.group_enqueue(r, n)),
        "celery_group_batch": step(
            "bulk/celery-group-batch", lambda: cel.group_enqueue(r, n, batched=True)
        ),
        "jobyard": step("bulk/jobyard", lambda: jy.bulk_enqueue(r, n)),
        "bullmq": step("bulk/bullmq", lambda: bull("bulk", n=n)),
    })  # fmt: skip
    # c) no-op drain
    out["drain"] = section("c", lambda: drains(args, r, n, cel, jy, common, step, bull))
    # d) enqueue-to-start latency
    out["latency_ms"] = section("d", lambda: {
        "celery": step("latency/celery", lambda: cel.latency(r, lat_n, spacing)),
        "jobyard": step("latency/jobyard", lambda: jy.latency(r, lat_n, spacing)),
        "bullmq": step(
            "latency/bullmq",
            lambda: bull("latency", n=lat_n, spacing_ms=args.spacing_ms, concurrency=1),
        ),
    })  # fmt: skip
    # e) many waiting jobs
    out["many_waiting"] = section("e", lambda: {
        "celery": step(f"many-{many_n}/celery", lambda: cel.many_waiting(r, many_n)),
        "jobyard": step(f"many-{many_n}/jobyard", lambda: jy.many_waiting(r, many_n)),
        # Sent the Celery way (groups through send.lua: slow to fill), so fewer of them.
        "jobyard_plain": step(
            f"many-{PLAIN_MANY_N}/jobyard-plain", lambda: jy.plain_many_waiting(r, PLAIN_MANY_N)
        ),
        "bullmq": step(f"many-{many_n}/bullmq", lambda: bull("many", n=many_n))
        if not args.quick
        else None,
    })  # fmt: skip
    # CPU profiles
    if not args.no_profile and "p" in sections:
        out["profiles"] = profiles(args, r, cel, jy, profiling, step)
    out["targets"] = targets(out)
    out["errors"] = runner.errors
    out["step_seconds"] = runner.seconds
    out["step_busy_cores"] = runner.busy
    out["load_at_end"] = foreign_load()
    return out


def _best(runs: list[Any]) -> Any:
    """The fastest of repeated drains (foreign load only ever slows one down), with all rates."""
    done = [x for x in runs if x]
    if not done:
        return None
    best = dict(max(done, key=lambda x: x["jobs_per_s"]))
    best["rounds_jobs_per_s"] = [x["jobs_per_s"] if x else None for x in runs]
    return best


def drains(args, r, n, cel, jy, common, step, bull) -> dict[str, Any]:
    """c): Celery and Jobyard alternate, `--rounds` times per variant; the best of each."""
    out: dict[str, Any] = {}
    for variant, worker_args, count in (
        ("prefork_c2", common.PREFORK_2, 1),
        ("solo_x2", common.SOLO, 2),
    ):
        if args.drains and variant not in args.drains.split(","):
            continue
        runs: dict[str, list[Any]] = {"celery": [], "jobyard": [], "jobyard_plain": []}
        for i in range(args.rounds):
            tag = f"#{i + 1}" if args.rounds > 1 else ""
            runs["celery"].append(
                step(
                    f"drain-{variant}/celery{tag}",
                    lambda a=worker_args, c=count: cel.drain(r, n, a, c),
                )
            )
            runs["jobyard"].append(step(f"drain-{variant}/jobyard{tag}",
                                        lambda a=worker_args, c=count: jy.drain(r, n, a, c)))  # fmt: skip
            # The same plain Celery task, sent and run through Jobyard: tracked as a job.
            runs["jobyard_plain"].append(step(
                f"drain-{variant}/jobyard-plain{tag}",
                lambda a=worker_args, c=count: jy.plain_drain(r, n, a, c),
            ))  # fmt: skip
        out[variant] = {name: _best(results) for name, results in runs.items()}
    if not args.no_diagnostics and "prefork_c2" in out:
        out["prefork_c2"]["jobyard_task_events_on"] = step(
            "drain-prefork_c2/jobyard-events-on",
            lambda: jy.drain(r, n, common.PREFORK_2, env={"BENCH_TASK_EVENTS": "1"}),
        )
    try:
        from bench import dramatiq_bench as dq
    except ImportError:  # the bench extra is not installed
        common.log("dramatiq not installed (pip install -e '.[bench]'): its drain is skipped")
    else:
        # The figure for the fastest Python peer: 2 processes x 8 threads.
        out["dramatiq_p2_t8"] = step("drain/dramatiq-p2-t8", lambda: dq.drain(r, n, 2, 8))
    out["bullmq_c1"] = step("drain/bullmq-c1", lambda: bull("drain", n=n, concurrency=1))
    out["bullmq_c50"] = step("drain/bullmq-c50", lambda: bull("drain", n=n, concurrency=50))
    return out


def profiles(args, r, cel, jy, profiling, step) -> dict[str, Any]:
    pdir = args.profiles_dir
    pdir.mkdir(parents=True, exist_ok=True)
    pn, wn = args.profile_n, args.profile_worker_n
    from bench.celery_noop_app import make_app

    result: dict[str, Any] = {}

    def celery_producer(app, name: str) -> dict:
        task = app.tasks["bench.noop"]
        task.apply_async()  # connect and fill the producer pool outside the profile
        cel.flush(r)
        out = profiling.profile_loop(
            lambda: [task.apply_async() for _ in range(pn)], pn, pdir / f"{name}.prof"
        )
        cel._check_count(r, pn)
        return out

    result["producer_celery_stock_kombu"] = step(
        "profile/producer-celery", lambda: celery_producer(cel.app, "producer_celery")
    )
    result["producer_celery_jobyard_transport"] = step(
        "profile/producer-celery-jobyard-transport",
        lambda: celery_producer(
            make_app("tasks.worker.transport:Transport", "bench_celery_jt"), "producer_celery_jt"
        ),
    )

    def jobyard_single() -> dict:
        jy.warm_up(r)
        return profiling.profile_loop(
            lambda: [jy.tasks.enqueue(jy.NOOP) for _ in range(pn)],
            pn,
            pdir / "producer_jobyard.prof",
        )

    def jobyard_bulk() -> dict:
        jy.warm_up(r)
        bn = max(pn * 4, 1000)
        return profiling.profile_loop(
            lambda: jy.enqueue_many(bn), bn, pdir / "producer_jobyard_bulk.prof"
        )

    result["producer_jobyard"] = step("profile/producer-jobyard", jobyard_single)
    result["producer_jobyard_bulk"] = step("profile/producer-jobyard-bulk", jobyard_bulk)

    extra = {
        "kombu_ack": lambda k: k[0].endswith("kombu/message.py") and k[2] == "ack",
        # Task events are buffered by send() and published by flush() (once per loop turn).
        "task_events": lambda k: (
            k[0].endswith("celery/events/dispatcher.py") and k[2] in ("send", "flush")
        ),
        "django_fixup": lambda k: (
            k[0].endswith("celery/fixups/django.py")
            and k[2] in ("on_task_prerun", "on_task_postrun")
        ),
        "jobyard_execute": lambda k: k[0].endswith("tasks/worker/runner.py") and k[2] == "execute",
        "jobyard_scripts": lambda k: k[0].endswith("tasks/scripts.py") and k[2] == "run",
        "structlog": lambda k: (
            k[0].endswith("structlog/stdlib.py") and k[2] in ("info", "debug", "warning")
        ),
        "options_validate": lambda k: k[2].startswith("<method 'validate_json'"),
    }

    def celery_worker() -> dict:
        cel.prefill(r, wn)
        return profiling.profile_worker(
            cel.APP_MODULE, cel.QUEUE, cel.worker_env(), lambda: cel.probe(r)()[1], wn,
            pdir / "worker_celery_solo.prof", extra,
        )  # fmt: skip

    def jobyard_worker() -> dict:
        jy.prefill(r, wn)
        poll = jy.probe(r, wn, int(time.time() // 60))
        return profiling.profile_worker(
            jy.APP_MODULE, jy.QUEUE, jy.worker_env(), lambda: poll()[1], wn,
            pdir / "worker_jobyard_solo.prof", extra,
        )  # fmt: skip

    def jobyard_plain_worker() -> dict:
        jy.plain_prefill(r, wn)
        poll = jy.probe(r, wn, int(time.time() // 60))
        return profiling.profile_worker(
            jy.APP_MODULE, jy.QUEUE, jy.worker_env(), lambda: poll()[1], wn,
            pdir / "worker_jobyard_plain_solo.prof", extra,
        )  # fmt: skip

    result["worker_celery_solo"] = step("profile/worker-celery", celery_worker)
    result["worker_jobyard_solo"] = step("profile/worker-jobyard", jobyard_worker)
    result["worker_jobyard_plain_solo"] = step("profile/worker-jobyard-plain", jobyard_plain_worker)
    return result


# --- verdicts and table --------------------------------------------------------------------


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or d.get(key) is None:
            return None
        d = d[key]
    return d


def targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []

    def add(name: str, value: float | None, target: str, met: bool | None) -> None:
        rows.append({"target": name, "value": value, "goal": target, "met": met})

    bulk = _get(out, "bulk_enqueue_jobs_per_s", "jobyard")
    add("b) Jobyard bulk enqueue jobs/s", bulk, f">= {TARGETS['bulk_jobs_per_s']}",
        None if bulk is None else bulk >= TARGETS["bulk_jobs_per_s"])  # fmt: skip
    for variant in ("prefork_c2", "solo_x2"):
        c = _get(out, "drain", variant, "celery", "jobs_per_s")
        j = _get(out, "drain", variant, "jobyard", "jobs_per_s")
        ratio = j / c if c and j else None
        add(f"c) drain {variant}: Jobyard / Celery", ratio, f">= {TARGETS['drain_ratio']}",
            None if ratio is None else ratio >= TARGETS["drain_ratio"])  # fmt: skip
        p = _get(out, "drain", variant, "jobyard_plain", "jobs_per_s")
        ratio = p / c if c and p else None
        add(f"c) drain {variant}: tracked plain task / Celery", ratio,
            f">= {TARGETS['drain_ratio']}",
            None if ratio is None else ratio >= TARGETS["drain_ratio"])  # fmt: skip
    c50, j50 = _get(out, "latency_ms", "celery", "p50"), _get(out, "latency_ms", "jobyard", "p50")
    delta = j50 - c50 if c50 is not None and j50 is not None else None
    add("d) latency p50: Jobyard - Celery (ms)", delta,
        f"<= {TARGETS['latency_p50_delta_ms']}",
        None if delta is None else delta <= TARGETS["latency_p50_delta_ms"])  # fmt: skip
    c99, j99 = _get(out, "latency_ms", "celery", "p99"), _get(out, "latency_ms", "jobyard", "p99")
    ratio = j99 / c99 if c99 and j99 is not None else None
    add("d) latency p99: Jobyard / Celery", ratio, f"<= {TARGETS['latency_p99_ratio']}",
        None if ratio is None else ratio <= TARGETS["latency_p99_ratio"])  # fmt: skip
    per_job = _get(out, "many_waiting", "jobyard", "bytes_per_waiting_job")
    add(f"e) Redis bytes per waiting job at {_get(out, 'config', 'many_n')}", per_job,
        f"<= {TARGETS['bytes_per_waiting_job']}",
        None if per_job is None else per_job <= TARGETS["bytes_per_waiting_job"])  # fmt: skip
    for call in ("counts", "metrics"):
        for stat in ("median_ms", "p99_ms"):
            value = _get(out, "many_waiting", "jobyard", call, stat)
            add(f"e) Queue.{call}() {stat} at {_get(out, 'config', 'many_n')} waiting", value,
                f"< {TARGETS['inspect_ms']}",
                None if value is None else value < TARGETS["inspect_ms"])  # fmt: skip
    return rows


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def table(out: dict[str, Any]) -> str:
    lines: list[str] = []

    def row(label: str, c: Any, j: Any, b: Any, digits: int = 0) -> None:
        lines.append(
            f"{label:<44} {_fmt(c, digits):>14} {_fmt(j, digits):>14} {_fmt(b, digits):>14}"
        )

    load0, load1 = _get(out, "load_at_start", "loadavg"), _get(out, "load_at_end", "loadavg")
    lines.append(
        f"load average at start {load0}, at end {load1} (2 cores: above ~1, others share them)"
    )
    lines.append(f"{'':<44} {'Celery':>14} {'Jobyard':>14} {'BullMQ':>14}")
    s = out.get("single_enqueue_jobs_per_s") or {}
    row("a) single enqueue, jobs/s", s.get("celery"), s.get("jobyard"), s.get("bullmq"))
    b = out.get("bulk_enqueue_jobs_per_s") or {}
    row(
        "b) bulk enqueue, jobs/s (group | bulk)",
        b.get("celery_group"),
        b.get("jobyard"),
        b.get("bullmq"),
    )
    row("b) bulk enqueue, jobs/s (group+batch)", b.get("celery_group_batch"), None, None)
    d = out.get("drain") or {}
    for variant, label in (("prefork_c2", "prefork -c 2"), ("solo_x2", "2 x solo")):
        c, j = _get(d, variant, "celery"), _get(d, variant, "jobyard")
        bq = _get(d, "bullmq_c1") if variant == "prefork_c2" else None
        row(f"c) drain {label}, jobs/s", _get(c, "jobs_per_s"), _get(j, "jobs_per_s"),
            _get(bq, "jobs_per_s"))  # fmt: skip
        row("   worker CPU us/job", _get(c, "worker_cpu_us_per_job"),
            _get(j, "worker_cpu_us_per_job"), None)  # fmt: skip
        row("   redis CPU us/job", _get(c, "redis_cpu_us_per_job"),
            _get(j, "redis_cpu_us_per_job"), None)  # fmt: skip
        row(f"c) drain {label}, plain task tracked, jobs/s", None,
            _get(d, variant, "jobyard_plain", "jobs_per_s"), None)  # fmt: skip
    v = _get(d, "prefork_c2", "jobyard_task_events_on")
    if v:
        row("c) drain prefork -c 2, Jobyard, task events on", None, v["jobs_per_s"], None)
    row("c) drain BullMQ concurrency 50, jobs/s", None, None, _get(d, "bullmq_c50", "jobs_per_s"))
    c, j = _get(d, "prefork_c2", "celery"), _get(d, "prefork_c2", "jobyard")
    row("   Redis bytes per waiting job (at N)", _get(c, "bytes_per_waiting_job"),
        _get(j, "bytes_per_waiting_job"), _get(d, "bullmq_c1", "bytes_per_waiting_job"))  # fmt: skip
    lat = out.get("latency_ms") or {}
    for p in ("p50", "p95", "p99", "max"):
        row(f"d) enqueue-to-start latency {p}, ms", _get(lat, "celery", p), _get(lat, "jobyard", p),
            _get(lat, "bullmq", p), 2)  # fmt: skip
    m = out.get("many_waiting") or {}
    many_n = _get(out, "config", "many_n")
    row(f"e) fill {many_n:,} waiting, jobs/s", None, _get(m, "jobyard", "fill_jobs_per_s"),
        _get(m, "bullmq", "fill_jobs_per_s"))  # fmt: skip
    row("e) Redis bytes per waiting job", _get(m, "celery", "bytes_per_waiting_job"),
        _get(m, "jobyard", "bytes_per_waiting_job"),
        _get(m, "bullmq", "bytes_per_waiting_job"))  # fmt: skip
    row(f"e) ... plain Celery task, tracked (at {PLAIN_MANY_N:,})", None,
        _get(m, "jobyard_plain", "bytes_per_waiting_job"), None)  # fmt: skip
    for stat in ("median_ms", "p99_ms"):
        row(f"e) counts() {stat} (BullMQ getJobCounts)", None,
            _get(m, "jobyard", "counts", stat), _get(m, "bullmq", "counts", stat), 3)  # fmt: skip
        row(f"e) metrics() {stat}", None, _get(m, "jobyard", "metrics", stat), None, 3)
    prof = out.get("profiles") or {}
    if prof:
        lines.append("")
        lines.append("CPU profiles (cProfile): redis.client.Redis.__init__ cumulative share")
        for key, label in (
            ("producer_celery_stock_kombu", "producer: apply_async, stock kombu"),
            ("producer_celery_jobyard_transport", "producer: apply_async, tasks.transport"),
            ("producer_jobyard", "producer: tasks.enqueue"),
            ("worker_celery_solo", "worker -P solo: plain Celery, stock kombu"),
            ("worker_jobyard_solo", "worker -P solo: Jobyard"),
        ):
            p = prof.get(key)
            if p:
                lines.append(
                    f"  {label:<44} {p['redis_init_cum_share']:>6.1%}"
                    f"  ({p['redis_init_calls_per_job']:.2f} per job,"
                    f" {p['redis_init_us_per_call']:.0f} us each)"
                )
        parts = ("kombu_ack", "task_events", "django_fixup", "jobyard_execute",
                 "jobyard_scripts", "structlog", "options_validate")  # fmt: skip
        for key, label in (("worker_celery_solo", "Celery"), ("worker_jobyard_solo", "Jobyard")):
            p = prof.get(key)
            if p:
                busy = p["profiled_s"] / p["jobs"] * 1e6
                shares = ", ".join(
                    f"{part} {p[part + '_cum_share']:.0%}"
                    for part in parts
                    if p.get(part + "_cum_share")
                )
                lines.append(f"  {label} solo worker, profiled busy {busy:,.0f} us/job: {shares}")
    lines.append("")
    lines.append("Targets")
    for t in out.get("targets", []):
        lines.append(
            f"  {t['target']:<50} {_fmt(t['value'], 3):>12}  {t['goal']:<10} {_fmt(t['met'])}"
        )
    if out.get("errors"):
        lines.append("")
        lines.append("Failed steps")
        for name, err in out["errors"].items():
            lines.append(f"  {name}: {err}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--n", type=int, default=20_000, help="jobs per enqueue and drain run")
    ap.add_argument("--quick", action="store_true",
                    help="100,000 waiting jobs instead of 1,000,000; no BullMQ at that size")  # fmt: skip
    ap.add_argument("--many-n", type=int, default=None, help="waiting jobs for e)")
    ap.add_argument("--latency-n", type=int, default=500)
    ap.add_argument("--spacing-ms", type=float, default=5.0)
    ap.add_argument("--profile-n", type=int, default=5000, help="jobs per producer profile")
    ap.add_argument("--profile-worker-n", type=int, default=5000, help="jobs per worker profile")
    ap.add_argument("--rounds", type=int, default=1,
                    help="c): run each Celery/Jobyard drain this many times, alternating; keep the best")  # fmt: skip
    ap.add_argument("--only", default="", metavar="a,b,c,d,e,p",
                    help="run only these sections (p: profiles); default all")  # fmt: skip
    ap.add_argument(
        "--drains",
        default="",
        metavar="prefork_c2,solo_x2",
        help="c): run only these worker variants; default both",
    )
    ap.add_argument("--no-bullmq", action="store_true")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--no-diagnostics", action="store_true",
                    help="skip the diagnostic Jobyard drain with Celery task events on")  # fmt: skip
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="first wait up to this long for the 1-min load average to fall below 0.5")  # fmt: skip
    ap.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json")
    ap.add_argument("--profiles-dir", type=Path, default=PROFILES_DIR,
                    help="where the .prof files go (open them with python -m pstats)")  # fmt: skip
    args = ap.parse_args()

    deadline = time.monotonic() + args.wait_quiet
    while time.monotonic() < deadline and float(foreign_load()["loadavg"][0]) >= 0.5:
        time.sleep(5)
    # SIGTERM must run the finally below: it stops redis-server and any worker by pid.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="jobyard-bench-"))
    server = RedisServer(free_port(), tmp / "redis", persistent=False)
    started = time.perf_counter()
    try:
        server.start()
        log(f"redis-server pid {server.process.pid} on {server.url}")
        out = run(args, server.url)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    out["total_seconds"] = round(time.perf_counter() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(table(out))
    print(f"\nwritten to {args.output} in {out['total_seconds']} s")


if __name__ == "__main__":
    main()
