"""Celery's own integration suite, stock Celery and Jobyard side by side, in one command.

    .venv/bin/python -m bench.celery_suite
    .venv/bin/python -m bench.celery_suite --files test_tasks.py -- -k "test_retry"

1. Fetches the sdist of the installed Celery version with pip (`pip download celery==V
   --no-deps --no-binary :all:`) into `.dev/celery-suite/` (reused when present) and
   extracts its `t/integration` with the helpers it imports (t/__init__.py,
   t/canvas_helpers.py, t/skip.py) and its pyproject.toml (the pytest markers). Celery's
   own `celery/` package is not extracted: the suite runs against the installed Celery.
   Installs the test plugins it needs into this virtualenv when missing (pytest-timeout;
   pytest-rerunfailures with --reruns), at the versions the sdist's requirements pin.
2. Starts a private redis-server on a free loopback port (project/localdev.py's
   RedisServer) and runs the suite twice on it, flushed before each run:
   stock   - TEST_BROKER=redis://127.0.0.1:PORT/0, TEST_BACKEND=redis://127.0.0.1:PORT/0;
   jobyard - the same URLs, Django set up first, Jobyard's transport (named through
             `broker_transport` in the suite's integration-tests-config.json override,
             read by t/integration/conftest.py's celery_config fixture from pytest's
             rootdir; or by the URL alone when the project maps redis:// to it), and
             Jobyard's result backend behind the `redis://` scheme when importable (see
             bench/celery_suite_plugin.py).
3. Each run is `pytest t/integration/test_tasks.py t/integration/test_canvas.py
   -p celery.contrib.pytest -p pytest_timeout --timeout=N --junitxml=...` (plugin
   autoloading off, so only what the suite needs is loaded); the junit XML is parsed per
   test, and a side-by-side table (counts per file and configuration, durations, every test
   whose outcome differs with the first line of its failure) is printed and written to
   bench/results/celery-suite-<date>.txt and .json.
4. Bounded: a per-test timeout (300 s; the suite's own timeout marks win where it sets
   them) and an overall budget shared by the two runs (3000 s; a full comparison takes
   about 40 minutes on 2 cores); a run that reaches its share is interrupted (SIGINT, so
   pytest still writes its junit XML), and what it ran is kept.

See docs/celery-suite.md for the figures and the explanation of each difference.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".dev" / "celery-suite"
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_TRANSPORT = "tasks.worker.transport:Transport"
DEFAULT_BACKEND = "tasks.results:JobyardBackend"
STOCK_BACKEND = "celery.backends.redis:RedisBackend"
DEFAULT_FILES = ["test_tasks.py", "test_canvas.py"]
#: What the two files, their conftest and tasks.py import beyond Celery and pytest, and the
#: pytest plugin the runs load: import name -> distribution (pinned from the sdist).
NEEDED = {"pytest_timeout": "pytest-timeout", "pydantic": "pydantic"}
RERUNS = {"pytest_rerunfailures": "pytest-rerunfailures"}
#: Members of the sdist that the two test files need (besides t/integration/).
HELPERS = [
    "t/__init__.py",
    "t/canvas_helpers.py",
    "t/skip.py",
    "pyproject.toml",
    "requirements/test.txt",
    "requirements/test-integration.txt",
]
OUTCOMES = ["passed", "failed", "error", "skipped", "xfailed"]
#: When a test has several junit entries (a failed subtest, a teardown error), the worst
#: one is its outcome.
RANK = {"failed": 6, "error": 5, "passed": 3, "xfailed": 2, "skipped": 1, "not run": 0}
#: Both on database 0, as in Celery's own runs (`redis://`): test_chord_on_error reads the
#: chord's result key through get_redis_connection(), which knows no database number.
BROKER_DB, BACKEND_DB = 0, 0


def log(msg: str) -> None:
    print(f"[celery-suite] {msg}", file=sys.stderr, flush=True)


# --- 1. the suite ---------------------------------------------------------------------------


def fetch_suite(version: str, cache: Path) -> Path:
    """The extracted suite of Celery `version` (a folder with t/ and pyproject.toml)."""
    cache.mkdir(parents=True, exist_ok=True)
    tree = cache / f"celery-{version}"
    if (tree / ".extracted").exists():
        return tree
    sdist = cache / f"celery-{version}.tar.gz"
    if not sdist.exists():
        log(f"downloading the sdist of celery {version} with pip")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"celery=={version}",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--disable-pip-version-check",
                "-q",
                "-d",
                str(cache),
            ],
            check=True,
        )
    prefix = f"celery-{version}/"
    tree.mkdir(exist_ok=True)
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if not member.name.startswith(prefix) or not (member.isfile() or member.isdir()):
                continue
            rel = member.name[len(prefix) :]
            if rel.startswith("t/integration/") or rel in HELPERS:
                member.name = rel
                tar.extract(member, tree, filter="data")
    missing = [
        h for h in ("t/integration/conftest.py", "pyproject.toml") if not (tree / h).exists()
    ]
    if missing:
        raise SystemExit(f"the sdist of celery {version} has no {', '.join(missing)}")
    (tree / ".extracted").write_text(str(sdist.name))
    return tree


def _pins(tree: Path) -> dict[str, str]:
    pins = {}
    for name in ("requirements/test.txt", "requirements/test-integration.txt"):
        path = tree / name
        if path.exists():
            for line in path.read_text().splitlines():
                if m := re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line.strip()):
                    pins[m.group(1).lower()] = m.group(2)
    return pins


def ensure_deps(tree: Path, reruns: bool) -> list[str]:
    """Install the test-only packages the suite needs and this virtualenv lacks."""
    needed = dict(NEEDED, **(RERUNS if reruns else {}))
    missing = [dist for module, dist in needed.items() if importlib.util.find_spec(module) is None]
    if not missing:
        return []
    pins = _pins(tree)
    specs = [f"{dist}=={pins[dist]}" if dist in pins else dist for dist in missing]
    log(f"installing {' '.join(specs)} into {sys.prefix} (test-only; not a runtime dependency)")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *specs],
        check=True,
    )
    return specs


# --- 2. the two configurations -----------------------------------------------------------------


def _base_env(port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "DJANGO_", "CELERY_", "JOBYARD_", "TEST_", "PYTEST_"))
    }
    env.update(
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        # t/integration/tasks.py's get_redis_connection() (db 0) reads these two.
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(port),
        TEST_BROKER=f"redis://127.0.0.1:{port}/{BROKER_DB}",
        TEST_BACKEND=f"redis://127.0.0.1:{port}/{BACKEND_DB}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def jobyard_env(port: int, settings: str, keep_logging: bool) -> dict[str, str]:
    env = _base_env(port)
    env.update(
        CELERY_SUITE_DJANGO="1",
        DJANGO_SETTINGS_MODULE=settings,
        # The project's own Redis (registry keys, bells, heartbeats) is the broker's database,
        # as in production (CELERY_BROKER_URL = REDIS_URL).
        REDIS_URL=f"redis://127.0.0.1:{port}/{BROKER_DB}",
        # No PostgreSQL: nothing in the suite's worker needs one, and a developer's own
        # database must not be reached. A closed loopback port refuses at once (the result
        # backend's archive lookup answers "unknown" then, as it does in any tool).
        DATABASE_URL="postgres://jobyard@127.0.0.1:9/jobyard",
    )
    if keep_logging:
        env["CELERY_SUITE_KEEP_LOGGING"] = "1"
    return env


_PREFLIGHT = """
import json, sys
import django
django.setup()
from kombu import transport
from kombu.utils.imports import symbol_by_name
out = {"redis_alias": transport.TRANSPORT_ALIASES.get("redis")}
for what, path in (("transport", sys.argv[1]), ("backend", sys.argv[2])):
    if not path:
        continue
    try:
        symbol_by_name(path)
        out[what] = None
    except Exception as exc:
        out[what] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""
STOCK_REDIS_TRANSPORT = "kombu.transport.redis:Transport"


def resolve_jobyard(
    args: argparse.Namespace, env: dict[str, str]
) -> tuple[str | None, str | None, list[str]]:
    """The transport and backend of the Jobyard run, after checking that they import with
    Django set up; the notes say what `auto` chose or which default was replaced, and why.

    Transport `auto`: when the project maps the `redis://` scheme to a transport of its own
    once Django is set up (kombu's TRANSPORT_ALIASES), the URL alone names it, as in a
    deployment; otherwise `broker_transport` names DEFAULT_TRANSPORT by path."""
    transport = {"url": None, "auto": DEFAULT_TRANSPORT}.get(args.transport, args.transport)
    backend = None if args.backend == "stock" else args.backend
    result = subprocess.run(
        [sys.executable, "-c", _PREFLIGHT, transport or "", backend or ""],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise SystemExit(f"Django does not set up for the Jobyard run:\n{result.stderr[-3000:]}")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    alias = found.get("redis_alias") or STOCK_REDIS_TRANSPORT
    notes = []
    if args.transport == "auto" and alias != STOCK_REDIS_TRANSPORT:
        notes.append(f"transport: the project maps redis:// to {alias}; the URL names it")
        transport = None
    elif transport and found.get("transport"):
        raise SystemExit(f"transport {transport} does not import: {found['transport']}")
    elif transport is None and alias == STOCK_REDIS_TRANSPORT:
        notes.append("transport: redis:// is kombu's own here: this run is stock kombu")
    if backend and found.get("backend"):
        if args.backend != DEFAULT_BACKEND:
            raise SystemExit(f"--backend {backend} does not import: {found['backend']}")
        notes.append(
            f"backend {backend} does not import ({found['backend']}); "
            "the stock Redis backend is used"
        )
        backend = None
    return transport, backend, notes


# --- 3. a run -------------------------------------------------------------------------------------


def run_suite(
    name: str,
    tree: Path,
    env: dict[str, str],
    override: dict[str, Any] | None,
    files: list[str],
    out_dir: Path,
    timeout: int,
    budget: float,
    reruns: bool,
    extra: list[str],
    redis_client: Any,
    ignore_marks: bool = False,
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    junit, reports, used = out_dir / "junit.xml", out_dir / "reports.jsonl", out_dir / "used.json"
    for path in (junit, reports, used):
        path.unlink(missing_ok=True)
    # Each run gets its own copy of the suite: the override file lives in pytest's rootdir,
    # and another comparison may be running from the same cache.
    tree = _copy_suite(tree, out_dir / "suite")
    if override:
        (tree / "integration-tests-config.json").write_text(json.dumps(override, indent=2))
    redis_client.flushall()
    env = dict(env, CELERY_SUITE_USED=str(used), CELERY_SUITE_REPORTS=str(reports))
    if ignore_marks:
        env["CELERY_SUITE_IGNORE_TIMEOUT_MARKS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *(f"t/integration/{f}" for f in files),
        "-p",
        "celery.contrib.pytest",
        "-p",
        "pytest_timeout",
        "-p",
        "bench.celery_suite_plugin",
        *(["-p", "pytest_rerunfailures"] if reruns else []),
        "-p",
        "no:cacheprovider",
        f"--rootdir={tree}",
        f"--timeout={timeout}",
        "-o",
        "junit_family=xunit1",
        f"--junitxml={junit}",
        "-v",
        "-rfEsxX",
        "--tb=short",
        "--color=no",
        *extra,
    ]
    log(
        f"{name}: running ({', '.join(files)}), budget {budget:.0f} s, log {out_dir / 'pytest.log'}"
    )
    started = time.monotonic()
    stopped = False
    with open(out_dir / "pytest.log", "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait(budget)
        except subprocess.TimeoutExpired:
            stopped = True
            log(f"{name}: budget reached; interrupting (pytest writes what it ran)")
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
        finally:
            _stop_group(proc)
    wall = time.monotonic() - started
    tests = parse_junit(junit, files) if junit.exists() else {}
    source = "junit"
    if not tests and reports.exists():
        tests, source = parse_reports(reports, files), "reports"
    if reports.exists():
        for test_id, seconds in durations(reports).items():
            if test_id in tests:
                tests[test_id]["time"] = seconds
    log(f"{name}: exit {proc.returncode} after {wall:.0f} s, {len(tests)} tests ({source})")
    keys = key_census(redis_client)
    return {
        "name": name,
        "command": cmd[1:],
        "override": override,
        "exit_code": proc.returncode,
        "stopped_by_budget": stopped,
        "wall_s": round(wall, 1),
        "used": json.loads(used.read_text()) if used.exists() else None,
        "keys_left": keys,
        "tests": tests,
        "source": source,
        "log": str(out_dir / "pytest.log"),
    }


def _copy_suite(tree: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(tree, dest, ignore=shutil.ignore_patterns("__pycache__", ".extracted"))
    return dest


def key_census(client: Any, top: int = 12) -> dict[str, Any]:
    """What a run left in Redis, per database: key count and the commonest key shapes
    (ids and numbers replaced), e.g. an ephemeral reply queue's bell that nothing removes."""
    census: dict[str, Any] = {}
    for db in sorted({BROKER_DB, BACKEND_DB}):
        conn = client.connection_pool.connection_kwargs
        r = type(client)(host=conn.get("host", "127.0.0.1"), port=conn["port"], db=db)
        shapes: Counter[str] = Counter()
        for key in r.scan_iter(count=1000):
            text = key.decode(errors="replace")
            shapes[re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|[0-9a-f]{32}|\d+", "#", text)] += 1
        census[f"db{db}"] = {"keys": sum(shapes.values()), "shapes": dict(shapes.most_common(top))}
        r.close()
    return census


def _stop_group(proc: subprocess.Popen) -> None:
    """End pytest, then whatever is left of the process group it leads (the suite's worker
    pool), all started by this run."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, 0)  # the group still exists: only our own children can be in it
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _junit_id(case: ET.Element, files: list[str]) -> tuple[str, str]:
    """(file, pytest-style id `file::Class::name`) of a junit testcase."""
    classname = case.get("classname", "")
    path = case.get("file")
    if not path:
        stems = [f for f in files if f".{Path(f).stem}." in f".{classname}."]
        path = f"t/integration/{stems[0]}" if stems else classname
    module = path.removesuffix(".py").replace("/", ".")
    cls = classname[len(module) + 1 :] if classname.startswith(module) else ""
    file = Path(path).name
    return file, "::".join(filter(None, [file, cls, case.get("name", "")]))


def _first_line(text: str | None, limit: int = 200) -> str:
    line = next((x.strip() for x in (text or "").splitlines() if x.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _merge(
    tests: dict[str, dict[str, Any]], test_id: str, file: str, outcome: str, message: str | None
) -> dict[str, Any]:
    """Record one outcome of a test; the worst of its outcomes (a failed subtest, a teardown
    error) is the test's, with that outcome's first message line."""
    entry = tests.setdefault(
        test_id, {"file": file, "outcome": outcome, "time": 0.0, "message": ""}
    )
    if RANK[outcome] > RANK[entry["outcome"]] or (
        outcome == entry["outcome"] and not entry["message"]
    ):
        entry["outcome"] = outcome
        entry["message"] = _first_line(message)
    return entry


def parse_junit(path: Path, files: list[str]) -> dict[str, dict[str, Any]]:
    """Per test id: outcome and the first line of its failure (times: see durations())."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return {}
    tests: dict[str, dict[str, Any]] = {}
    for case in root.iter("testcase"):
        if not case.get("name"):
            continue  # the test an interrupt cut short: it has no outcome
        file, test_id = _junit_id(case, files)
        found = []
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
            elif child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
            else:
                continue
            found.append((outcome, child.get("message") or child.text))
        for outcome, message in found or [("passed", "")]:
            entry = _merge(tests, test_id, file, outcome, message)
        entry["time"] = round(entry["time"] + float(case.get("time") or 0), 3)
    return tests


def durations(path: Path) -> dict[str, float]:
    """Per test id, setup + call + teardown from the plugin's reports. junit's times count a
    test with subtests more than once (each subtest report adds its time again)."""
    times: dict[str, float] = {}
    for line in path.read_text().splitlines():
        report = json.loads(line)
        if report["subtest"]:
            continue
        file_part, _, rest = report["nodeid"].partition("::")
        test_id = f"{Path(file_part).name}::{rest}"
        times[test_id] = round(times.get(test_id, 0.0) + report["duration"], 3)
    return times


def parse_reports(path: Path, files: list[str]) -> dict[str, dict[str, Any]]:
    """The plugin's streamed reports: the fallback when pytest was stopped before its XML."""
    tests: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        report = json.loads(line)
        file_part, _, rest = report["nodeid"].partition("::")
        file = Path(file_part).name
        outcome = report["outcome"]
        if report["when"] != "call" and outcome == "failed":
            outcome = "error"
        if report["xfail"] and outcome == "skipped":
            outcome = "xfailed"
        if report["when"] != "call" and outcome == "passed":
            outcome = "not run"  # a passing setup or teardown says nothing on its own
        _merge(tests, f"{file}::{rest}", file, outcome, report["message"])
    return tests


# --- 4. the comparison ----------------------------------------------------------------------------


def counts(run: dict[str, Any], files: list[str]) -> dict[str, dict[str, Any]]:
    per_file: dict[str, dict[str, Any]] = {}
    for f in [*files, "total"]:
        tests = [t for t in run["tests"].values() if f == "total" or t["file"] == f]
        c = Counter(t["outcome"] for t in tests)
        per_file[f] = {o: c.get(o, 0) for o in OUTCOMES}
        per_file[f]["tests"] = len(tests)
        per_file[f]["time_s"] = round(sum(t["time"] for t in tests), 1)
    return per_file


def differences(stock: dict[str, Any], jobyard: dict[str, Any]) -> list[dict[str, Any]]:
    diffs = []
    for test_id in sorted(set(stock["tests"]) | set(jobyard["tests"])):
        a = stock["tests"].get(test_id, {"outcome": "not run", "message": ""})
        b = jobyard["tests"].get(test_id, {"outcome": "not run", "message": ""})
        if a["outcome"] == b["outcome"]:
            continue
        good = ("passed", "xfailed")
        verdict = (
            "jobyard worse"
            if a["outcome"] in good and b["outcome"] not in good
            else "jobyard better"
            if b["outcome"] in good and a["outcome"] not in good
            else "other"
        )
        diffs.append(
            {
                "test": test_id,
                "stock": a["outcome"],
                "jobyard": b["outcome"],
                "verdict": verdict,
                "stock_message": a["message"],
                "jobyard_message": b["message"],
            }
        )
    return diffs


def render(report: dict[str, Any]) -> str:
    files, runs = report["files"], report["runs"]
    lines = [
        f"Celery's own integration suite, stock vs Jobyard — {report['date']}",
        f"celery {report['versions']['celery']}, kombu {report['versions']['kombu']}, "
        f"redis-py {report['versions']['redis']}, redis-server {report['versions']['redis_server']}, "
        f"Python {report['versions']['python']}; {report['machine']['nproc']} cores, load "
        f"{report['machine']['load_start']} -> {report['machine']['load_end']}; "
        f"git {report['git']['head']}{' (dirty)' if report['git']['dirty'] else ''}",
        f"per-test timeout {report['timeout_s']} s (the suite's own marks win), budget "
        f"{report['budget_s']} s, reruns {'on' if report['reruns'] else 'off'}"
        + (", the suite's timeout marks dropped" if report.get("ignore_timeout_marks") else "")
        + (f", pytest args {' '.join(report['pytest_args'])}" if report.get("pytest_args") else ""),
        "",
    ]
    for run in runs.values():
        used = run.get("used") or {}
        lines.append(
            f"{run['name']:8} transport {used.get('transport', '?')}, "
            f"backend {used.get('backend', '?')}"
            f"{'  [stopped by the budget]' if run['stopped_by_budget'] else ''}"
        )
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    for run in runs.values():
        left = run.get("keys_left") or {}
        if left:
            db0 = left.get(f"db{BROKER_DB}", {})
            shapes = ", ".join(f"{k} x{v}" for k, v in list(db0.get("shapes", {}).items())[:6])
            dbs = ", ".join(f"{db} {c['keys']}" for db, c in left.items())
            lines.append(f"{run['name']:8} keys left: {dbs}; broker db: {shapes}")
    lines += [
        "",
        f"{'file':18} {'config':8} "
        + " ".join(f"{o:>7}" for o in OUTCOMES)
        + f" {'tests':>6} {'time s':>7} {'wall s':>7}",
    ]
    for f in [*files, "total"]:
        for run in runs.values():
            c = report["counts"][run["name"]][f]
            wall = f"{run['wall_s']:>7.0f}" if f == "total" else " " * 7
            lines.append(
                f"{f:18} {run['name']:8} "
                + " ".join(f"{c[o]:>7}" for o in OUTCOMES)
                + f" {c['tests']:>6} {c['time_s']:>7.0f} {wall}"
            )
    diffs = report.get("differences")
    if diffs is not None:
        stock, jobyard = (report["counts"][n]["total"]["passed"] for n in ("stock", "jobyard"))
        verdict = "yes" if jobyard >= stock else "NO"
        lines += [
            "",
            f"at least as many passes as stock: {verdict} (jobyard {jobyard}, stock {stock})",
        ]
        lines += ["", f"Outcomes that differ ({len(diffs)}):"]
        for d in diffs or [{"test": "(none)"}]:
            if d["test"] == "(none)":
                lines.append("  (none)")
                continue
            lines.append(
                f"  {d['test']}: stock {d['stock']}, jobyard {d['jobyard']} ({d['verdict']})"
            )
            for who in ("stock", "jobyard"):
                if d[f"{who}_message"]:
                    lines.append(f"      {who}: {d[f'{who}_message']}")
    for run in runs.values():
        bad = sorted(
            (tid, t) for tid, t in run["tests"].items() if t["outcome"] in ("failed", "error")
        )
        lines += ["", f"{run['name']} failures and errors ({len(bad)}):"]
        lines += [f"  {tid}: {t['outcome']}: {t['message']}" for tid, t in bad] or ["  (none)"]
    return "\n".join(lines) + "\n"


def _git() -> dict[str, Any]:
    def git(*a: str) -> str:
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip()

    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "tasks", "project")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.celery_suite",
        description="Celery's integration suite (test_tasks, test_canvas) on stock Celery "
        "and on Jobyard's transport and result backend, side by side on one Redis.",
        epilog="Arguments after `--` go to both pytest runs (e.g. -- -k test_retry).",
    )
    parser.add_argument(
        "--transport",
        default="auto",
        help="Jobyard run's transport: a class path set as broker_transport; 'url' to let "
        "the broker URL's scheme choose after Django setup; 'auto' (default): 'url' when "
        f"the project maps redis:// to a transport of its own, else {DEFAULT_TRANSPORT}",
    )
    parser.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        help=f"Jobyard run's result backend class, served for redis:// URLs "
        f"(default {DEFAULT_BACKEND} when it imports, else the stock one); "
        "'stock' for celery's RedisBackend",
    )
    parser.add_argument(
        "--settings", default="project.settings", help="DJANGO_SETTINGS_MODULE of the Jobyard run"
    )
    parser.add_argument(
        "--jobyard-conf",
        default="{}",
        metavar="JSON",
        help="more Celery settings for the Jobyard run's override file",
    )
    parser.add_argument(
        "--keep-project-logging",
        action="store_true",
        help="leave the project's logging configuration on in the Jobyard run",
    )
    parser.add_argument(
        "--files",
        nargs="+",
        default=DEFAULT_FILES,
        metavar="FILE",
        help="files of t/integration to run (default: %(default)s)",
    )
    parser.add_argument("--only", choices=["stock", "jobyard"], help="run one configuration")
    parser.add_argument(
        "--ignore-timeout-marks",
        action="store_true",
        help="drop the suite's own timeout marks, so --timeout bounds every test "
        "(diagnosis: how long a test its mark cuts short really takes)",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=300,
        help="per-test timeout, s (default %(default)s: the suite's own upper bound; "
        "test_disabling_flag_allow_error_cb_on_chord_header waits 140 s by design)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=3000,
        help="overall budget for both runs, s (default %(default)s; a full comparison "
        "takes about 40 min on 2 cores)",
    )
    parser.add_argument(
        "--reruns",
        action="store_true",
        help="load pytest-rerunfailures, so the suite's flaky marks rerun "
        "(as Celery's CI does); off by default: each test's first outcome",
    )
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="report path without extension (default bench/results/celery-suite-<date>)",
    )
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    extra = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args

    from project.localdev import RedisServer, free_port

    version = importlib.metadata.version("celery")
    tree = fetch_suite(version, args.cache_dir)
    installed = ensure_deps(tree, args.reruns)
    started_at = dt.datetime.now()
    stamp = started_at.strftime("%Y%m%d-%H%M%S")
    load_start = [round(x, 2) for x in os.getloadavg()]
    git_at_start = _git()
    deadline = time.monotonic() + args.budget
    redis_dir = Path(tempfile.mkdtemp(prefix="jobyard-celery-suite-"))
    server = RedisServer(free_port(), redis_dir)
    server.start()
    runs: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if installed:
        notes.append(f"installed into the virtualenv: {' '.join(installed)}")
    try:
        import redis

        client = redis.Redis(port=server.port)
        redis_version = client.info("server")["redis_version"]
        log(
            f"celery {version}, suite in {tree}, redis-server {redis_version} on port {server.port}"
        )
        configs: list[tuple[str, dict[str, str], dict[str, Any] | None]] = []
        if args.only in (None, "stock"):
            configs.append(("stock", _base_env(server.port), None))
        if args.only in (None, "jobyard"):
            env = jobyard_env(server.port, args.settings, args.keep_project_logging)
            transport, backend, jy_notes = resolve_jobyard(args, env)
            notes += jy_notes
            for note in jy_notes:
                log(note)
            override = {
                **({"broker_transport": transport} if transport else {}),
                **json.loads(args.jobyard_conf),
            }
            env["CELERY_SUITE_BACKEND"] = backend or STOCK_BACKEND
            log(
                f"jobyard: transport {transport or '(from the broker URL)'}, "
                f"backend {backend or STOCK_BACKEND + ' (stock)'}"
            )
            configs.append(("jobyard", env, override or None))
        for i, (name, env, override) in enumerate(configs):
            remaining = deadline - time.monotonic()
            share = remaining / (len(configs) - i)
            runs[name] = run_suite(
                name,
                tree,
                env,
                override,
                args.files,
                args.cache_dir / "runs" / stamp / name,
                args.timeout,
                max(share, 1),
                args.reruns,
                extra,
                client,
                ignore_marks=args.ignore_timeout_marks,
            )
    finally:
        server.stop()
        shutil.rmtree(redis_dir, ignore_errors=True)

    report: dict[str, Any] = {
        "date": started_at.strftime("%Y-%m-%d %H:%M"),
        "files": args.files,
        "timeout_s": args.timeout,
        "budget_s": args.budget,
        "reruns": args.reruns,
        "ignore_timeout_marks": args.ignore_timeout_marks,
        "pytest_args": extra,
        "versions": {
            "celery": version,
            "kombu": importlib.metadata.version("kombu"),
            "redis": importlib.metadata.version("redis"),
            "redis_server": redis_version,
            "python": platform.python_version(),
            "pytest": importlib.metadata.version("pytest"),
        },
        "machine": {
            "nproc": os.cpu_count(),
            "load_start": load_start,
            "load_end": [round(x, 2) for x in os.getloadavg()],
        },
        "git": git_at_start,
        "notes": notes,
        "runs": runs,
        "counts": {name: counts(run, args.files) for name, run in runs.items()},
    }
    if "stock" in runs and "jobyard" in runs:
        report["differences"] = differences(runs["stock"], runs["jobyard"])
    text = render(report)
    print(text)
    base = args.output or RESULTS_DIR / f"celery-suite-{started_at:%Y-%m-%d}"
    base.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{base}.txt").write_text(text)
    Path(f"{base}.json").write_text(json.dumps(report, indent=1) + "\n")
    log(f"written {base}.txt and {base}.json")
    if "differences" not in report:
        return 0
    passed = {name: report["counts"][name]["total"]["passed"] for name in runs}
    return 0 if passed["jobyard"] >= passed["stock"] else 1


if __name__ == "__main__":
    sys.exit(main())
