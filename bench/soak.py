"""The soak: Jobyard under mixed load while a chaos loop breaks what it runs on. One command:

    .venv/bin/python -m bench.soak [--minutes 30] [--rate 20] [--json PATH] [--seed N]

Starts a Redis with AOF on and a PostgreSQL of its own (free loopback ports, a temporary
folder), four workers, the beat, the recorder; loads every queue (successes, retries,
permanent failures, delays, a schedule every second, bad input mixed in) while every
20-60 s it SIGKILLs a random worker or SIGTERMs one (then starts it again), restarts Redis
twice and stops PostgreSQL once for 60 s. At the end it accounts for every job: its final
state in the registry and in the archive, how often it ran, and why a job ran more often
than its policy says. Exit status 0 only when no job is lost or stuck, no archive row is
missing and every double run is explained. Results: --json, summarised in
docs/reliability.md. Nothing leaves 127.0.0.1; everything it starts it stops, by pid.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import _descendants
from project.localdev import PostgresServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
#: Worker groups as the Procfile draws them, smaller: (name, queues, pool args).
WORKERS = [
    ("main", "default,email,notifications,webhooks", ("-P", "prefork", "-c", "3")),
    ("reports", "reports", ("-P", "prefork", "-c", "2")),
    ("cleanup", "cleanup", ("-P", "solo",)),
    ("catalog", "catalog", ("-P", "prefork", "-c", "1")),
]  # fmt: skip
#: Shorter than production's so a 5-minute run sees kills recovered; stalls allowed 3 times
#: so that a job caught by several kills still completes.
SOAK_ENV = {
    "JOBYARD_LOCK_DURATION_MS": "10000",
    "JOBYARD_STALLED_INTERVAL_MS": "3000",
    "JOBYARD_MAX_STALLED": "3",
    "JOBYARD_RECONCILE_GRACE_MS": "15000",
    "WORKER_SHUTDOWN_GRACE": "5",
    "LOG_LEVEL": "WARNING",
    "LOG_FORMAT": "json",
    "DEBUG": "true",
    "DJANGO_SETTINGS_MODULE": "bench.settings",
}


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_kb(pid: int) -> int:
    total = 0
    for p in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    logfile: Path
    process: subprocess.Popen | None = None
    #: Every pid this process and its children had when we killed or stopped it.
    ended_pids: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, env=self.env, start_new_session=True,
            stdout=self.logfile.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def pids(self) -> set[int]:
        return {self.process.pid, *_descendants(self.process.pid)} if self.process else set()

    def kill(self) -> None:
        self.ended_pids["killed"] |= self.pids()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def term(self, timeout: float = 60) -> None:
        self.ended_pids["stopped"] |= self.pids()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.term(30)


class Soak:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.rng = random.Random(args.seed)
        self.duration = args.minutes * 60
        self.redis = RedisServer(free_port(), tmp / "redis", persistent=True)
        self.postgres = PostgresServer(free_port(), tmp / "postgres", durable=False)
        self.runs_file = tmp / "runs.log"
        # The project's defaults but for SOAK_ENV, whatever the calling shell (or the test
        # command) exported.
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("JOBYARD_", "QUEUE_", "WORKER_", "CELERY_"))}  # fmt: skip
        self.env = {
            **inherited, **SOAK_ENV, "REDIS_URL": self.redis.url,
            "DATABASE_URL": self.postgres.url(), "SOAK_RUNS_FILE": str(self.runs_file),
        }  # fmt: skip
        self.procs: dict[str, Proc] = {}
        #: job id -> (queue, kind, expected runs, expected final state)
        self.sent: dict[str, tuple[str, str, int, str]] = {}
        self.bad_refused = self.bad_accepted = 0
        self.enqueue_retries = 0
        self.faults: list[dict[str, Any]] = []
        self.redis_outages: list[tuple[float, float]] = []
        self.samples: list[dict[str, Any]] = []
        self.stop_load = threading.Event()
        self.seq = 0
        self.lock = threading.Lock()

    # --- processes -------------------------------------------------------------------------

    def _proc(self, name: str, args: list[str]) -> Proc:
        proc = Proc(name, args, self.env, self.tmp / f"{name}.log")
        self.procs[name] = proc
        proc.start()
        return proc

    def start_all(self) -> None:
        py = sys.executable
        for name, queues, pool in WORKERS:
            self._proc(name, [py, "-m", "celery", "-A", "project", "worker", "-n",
                              f"soak-{name}@%h", "-Q", queues, *pool, "--without-gossip",
                              "--without-mingle", "-l", "warning"])  # fmt: skip
        self._proc("beat", [py, "-m", "celery", "-A", "project", "beat", "-S",
                            "tasks.scheduling.beat:JobyardScheduler", "--pidfile=", "-l",
                            "warning"])  # fmt: skip
        self._proc("recorder", [py, "manage.py", "record_jobs"])

    def restart(self, proc: Proc) -> None:
        if proc.process.poll() is None:
            proc.term()
        proc.start()

    # --- load ------------------------------------------------------------------------------

    def send(self, kind: str, queue: str, data: dict[str, Any], **options: Any) -> str:
        from tasks import enqueue

        with self.lock:
            self.seq += 1
            job_id = f"soak-{self.seq}"
        expected_runs = 1 + data.get("fail_times", 0)
        final = "failed" if data.get("permanent") else "completed"
        self.sent[job_id] = (queue, kind, expected_runs, final)
        while True:  # the same id again until Redis takes it: an enqueue is idempotent
            try:
                enqueue(f"soak.{queue}", {"seq": self.seq, **data}, job_id=job_id,
                        remove_on_complete=False, remove_on_fail=False, **options)  # fmt: skip
                return job_id
            except Exception:  # Redis restarting: try again shortly
                self.enqueue_retries += 1
                time.sleep(0.2)

    def load(self) -> None:
        from tasks import InvalidJobData, enqueue

        queues = ["default", "email", "notifications", "webhooks", "reports", "cleanup",
                  "catalog"]  # fmt: skip
        weights = [30, 15, 15, 15, 10, 8, 7]
        interval = 1 / self.args.rate
        while not self.stop_load.is_set():
            queue = self.rng.choices(queues, weights)[0]
            roll = self.rng.random()
            if roll < 0.70:
                self.send("ok", queue, {"sleep_ms": self.rng.randint(0, 50)})
            elif roll < 0.80:
                self.send("retry", queue, {"fail_times": self.rng.randint(1, 2)})
            elif roll < 0.85:
                self.send("permanent", queue, {"permanent": True})
            elif roll < 0.95:
                self.send("delayed", queue, {}, delay=self.rng.randint(1000, 30_000))
            else:
                try:
                    enqueue(f"soak.{queue}", {"seq": "not a number", "bogus": "\x00"})
                    self.bad_accepted += 1
                except InvalidJobData:
                    self.bad_refused += 1
                except Exception:  # Redis away: not the input's fault, and nothing written
                    pass
            time.sleep(interval)

    def sample(self) -> None:
        from tasks.connection import get_redis

        started = time.monotonic()
        while not self.stop_load.is_set():
            row: dict[str, Any] = {"t": round(time.monotonic() - started, 1)}
            for name, proc in self.procs.items():
                if proc.process and proc.process.poll() is None:
                    row[f"rss_kb.{name}"] = rss_kb(proc.process.pid)
            with contextlib.suppress(Exception):
                row["redis_used_memory"] = int(get_redis().info("memory")["used_memory"])
            self.samples.append(row)
            self.stop_load.wait(10)

    # --- chaos -----------------------------------------------------------------------------

    def probe(self, queue: str, started: float) -> float | None:
        """Seconds from the fault's start until a job sent now has completed (None: never)."""
        from tasks import get_job

        job_id = self.send("probe", queue, {})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                job = get_job(queue, job_id)
                if job and job.state == "completed":
                    return round(time.monotonic() - started, 2)
            time.sleep(0.2)
        return None

    def fault(self, kind: str, target: str, action) -> None:
        """Inject a fault; then time how long a job sent right after it takes to complete."""
        started = time.monotonic()
        log(f"fault: {kind} {target}")
        action()
        ended = time.monotonic()
        queue = next((q for n, q, _ in WORKERS if n == target), "default").split(",")[0]
        recovered = self.probe(queue, ended)
        self.faults.append({
            "kind": kind, "target": target, "at_s": round(started - self.t0, 1),
            # How long the fault itself lasted (a restart, a stop), then the recovery after.
            "fault_s": round(ended - started, 2), "recovered_after_s": recovered,
        })  # fmt: skip

    def restart_redis(self) -> None:
        down = time.time()
        self.redis.stop()  # SIGTERM: Redis writes its AOF out before it exits
        self.redis.start()
        self.redis_outages.append((down, time.time()))

    def stop_postgres(self, seconds: float) -> None:
        self.postgres.stop()
        time.sleep(seconds)
        self.postgres.start()

    def chaos(self) -> None:
        workers = [name for name, _, _ in WORKERS]
        plan = {0.3: "redis", 0.5: "postgres", 0.7: "redis"}
        end = self.t0 + self.duration
        kill_next = True
        while (now := time.monotonic()) < end:
            wait = self.rng.uniform(20, 60) * min(1.0, self.duration / 1800 * 2)
            time.sleep(max(0.0, min(wait, end - now)))
            if time.monotonic() >= end:
                break
            progress = (time.monotonic() - self.t0) / self.duration
            due = [p for p in plan if p <= progress]
            if due:
                what = plan.pop(min(due))
                if what == "redis":
                    self.fault("redis_restart", "redis", self.restart_redis)
                else:
                    pg_s = min(60.0, self.duration / 5)
                    self.fault(f"postgres_stop_{pg_s:g}s", "postgres",
                               lambda s=pg_s: self.stop_postgres(s))  # fmt: skip
                continue
            target = self.procs[self.rng.choice(workers)]
            if kill_next:
                self.fault("sigkill", target.name, lambda p=target: (p.kill(), p.start()))
            else:
                self.fault("sigterm", target.name, lambda p=target: self.restart(p))
            kill_next = not kill_next

    # --- the end: every job accounted for --------------------------------------------------

    def final_states(self) -> dict[str, dict[str, str]]:
        from tasks import keys
        from tasks.connection import get_redis

        pipe = get_redis().pipeline(transaction=False)
        ids = list(self.sent)
        for job_id in ids:
            pipe.hmget(keys.job(self.sent[job_id][0], job_id), "state", "failedReason",
                       "stalledCount", "attemptsMade")  # fmt: skip
        out = {}
        for job_id, (state, reason, stalls, made) in zip(ids, pipe.execute(), strict=True):
            out[job_id] = {"state": state and state.decode(), "reason": reason and reason.decode(),
                           "stalls": int(stalls or 0), "attempts": int(made or 0)}  # fmt: skip
        return out

    def drain(self, timeout: float = 240) -> dict[str, dict[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            states = self.final_states()
            pending = [i for i, s in states.items()
                       if s["state"] not in ("completed", "failed")]  # fmt: skip
            if not pending or time.monotonic() > deadline:
                return states
            time.sleep(2)

    def archive_check(self, timeout: float = 180) -> dict[str, Any]:
        from django.db import connection

        from tasks.models import JobRecord

        connection.close()  # opened before PostgreSQL's stop: a new one

        deadline = time.monotonic() + timeout
        while True:
            rows = dict(JobRecord.objects.filter(job_id__startswith="soak-")
                        .values_list("job_id", "state"))  # fmt: skip
            missing = [i for i in self.sent if i not in rows]
            wrong = [i for i, (_, _, _, final) in self.sent.items()
                     if i in rows and rows[i] != final]  # fmt: skip
            if (not missing and not wrong) or time.monotonic() > deadline:
                return {"rows": len(rows), "missing": missing[:20], "missing_count": len(missing),
                        "wrong_state": wrong[:20], "wrong_state_count": len(wrong)}  # fmt: skip
            time.sleep(2)

    def runs(self) -> dict[str, list[tuple[int, float]]]:
        by_job: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for line in self.runs_file.read_text().splitlines():
            job_id, pid, at, _made = line.split()
            by_job[job_id].append((int(pid), float(at)))
        return by_job

    def explain(self, runs: list[tuple[int, float]]) -> str:
        killed = set().union(*(p.ended_pids["killed"] for p in self.procs.values()))
        stopped = set().union(*(p.ended_pids["stopped"] for p in self.procs.values()))
        lock_s = int(SOAK_ENV["JOBYARD_LOCK_DURATION_MS"]) / 1000
        for pid, at in runs[:-1]:  # the last run is the one that counted
            if pid in killed:
                return "its worker was SIGKILLed during the run"
            if pid in stopped:
                return "its worker was stopped (SIGTERM) and cut the run off"
            if any(a - 2 <= at <= b + lock_s for a, b in self.redis_outages):
                return "Redis restarted during the run: its outcome could not be written"
        return "unexplained"

    def report(self) -> dict[str, Any]:
        states = self.drain()
        lost = {i: s for i, s in states.items() if s["state"] != self.sent[i][3]}
        runs = self.runs()
        doubles: Counter[str] = Counter()
        unexplained = []
        for job_id, (_, _, expected, _) in self.sent.items():
            if len(runs.get(job_id, [])) > expected:
                why = self.explain(runs[job_id])
                doubles[why] += 1
                if why == "unexplained":
                    unexplained.append({"job": job_id, "runs": runs[job_id], **states[job_id]})
        scheduled = {i: r for i, r in runs.items() if i not in self.sent}
        schedule_doubles = {i: self.explain(r) for i, r in scheduled.items() if len(r) > 1}
        for why in schedule_doubles.values():
            doubles[why] += 1
        archive = self.archive_check()
        # After a minute's warm-up (pool processes forked, modules imported): the first and
        # last readings and the largest. A restarted worker starts small again.
        rss = defaultdict(list)
        for row in self.samples:
            for key, value in row.items():
                if key.startswith(("rss_kb.", "redis_used")) and row["t"] >= 60:
                    rss[key].append(value)
        memory = {k: {"first": v[0], "last": v[-1], "max": max(v)} for k, v in rss.items() if v}
        return {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version()},
            "args": vars(self.args),
            "sent": dict(Counter(kind for _, kind, _, _ in self.sent.values())),
            "bad_input": {"refused": self.bad_refused, "accepted": self.bad_accepted},
            "enqueue_retries_during_faults": self.enqueue_retries,
            "lost_or_stuck": len(lost),
            "lost_examples": dict(list(lost.items())[:20]),
            "final_states": dict(Counter(s["state"] for s in states.values())),
            "schedule_runs": len(scheduled),
            "double_runs": dict(doubles),
            "unexplained_double_runs": unexplained[:20],
            "archive": archive,
            "faults": self.faults,
            "memory": memory,
            "samples": self.samples,
        }  # fmt: skip

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.redis.start()
        self.postgres.start()
        os.environ.clear()
        os.environ.update(self.env)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT,
                       env=self.env, check=True)  # fmt: skip
        import django

        django.setup()
        from tasks.scheduling.service import install_schedule

        install_schedule("soak-every-second", "soak.default", {"seq": -1}, every="1s",
                         options={"remove_on_complete": False})  # fmt: skip
        self.start_all()
        time.sleep(5)
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=f, daemon=True) for f in (self.load, self.sample)]
        for t in threads:
            t.start()
        log(f"loading at {self.args.rate} jobs/s for {self.args.minutes:g} min, chaos on")
        self.chaos()
        self.stop_load.set()
        for t in threads:
            t.join(30)
        log(f"load stopped after {len(self.sent)} jobs; draining")
        # Stop the schedule so the drain has an end; its runs so far are accounted below.
        from django.db import connection

        connection.close()  # opened before PostgreSQL's stop: a new one
        install_schedule("soak-every-second", "soak.default", {"seq": -1}, every="1s",
                         enabled=False)  # fmt: skip
        return self.report()

    def close(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(Exception):
                proc.stop()
        self.redis.stop()
        self.postgres.stop()


def verdict(result: dict[str, Any]) -> list[str]:
    problems = []
    if result["lost_or_stuck"]:
        problems.append(f"{result['lost_or_stuck']} jobs lost or stuck")
    if result["archive"]["missing_count"] or result["archive"]["wrong_state_count"]:
        problems.append("archive rows missing or wrong")
    if result["double_runs"].get("unexplained"):
        problems.append(f"{result['double_runs']['unexplained']} unexplained double runs")
    if result["bad_input"]["accepted"]:
        problems.append("bad input accepted")
    if any(f["recovered_after_s"] is None for f in result["faults"]):
        problems.append("a fault was never recovered from")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=20.0, help="jobs sent per second")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write the full result here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jobyard-soak-"))
    os.chmod(tmp, 0o755)  # the postgres user must reach its data folder inside
    soak = Soak(args, tmp)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = soak.run()
    finally:
        soak.close()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(tmp, ignore_errors=True)
    problems = verdict(result)
    result["verdict"] = problems or ["ok"]
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    summary = {k: result[k] for k in ("sent", "bad_input", "lost_or_stuck", "final_states",
                                      "schedule_runs", "double_runs", "archive", "faults",
                                      "memory", "verdict")}  # fmt: skip
    print(json.dumps(summary, indent=1, default=str))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
