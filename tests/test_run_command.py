"""The run command brings the system up, prints the ping round trip, and leaves no process
behind after Ctrl-C."""

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from project.localdev import free_port, port_in_use

BASE_DIR = Path(__file__).resolve().parent.parent


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_it_runs_the_system_and_ctrl_c_leaves_nothing_behind():
    ports = {name: free_port() for name in ("redis", "postgres", "web", "flower")}
    # Not pytest's tmp_path: that is private to root, and PostgreSQL runs as `postgres`.
    dev_dir = Path(tempfile.mkdtemp(dir=os.environ["JOBYARD_TEST_TMP"]))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "project.localdev", "run", "--dir", str(dev_dir),
         *(f"--{name}-port={port}" for name, port in ports.items())],
        cwd=BASE_DIR, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    output: list[str] = []
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                line = proc.stdout.readline()
                output.append(line)
                if "round trip" in line:
                    break
            assert proc.poll() is None, "".join(output)
        text = "".join(output)
        assert re.search(r"ping \S+: pong from .+ round trip [\d.]+ ms", text), text
        assert re.search(r"login admin / \S+", text), text
        for name in ("web", "flower"):
            assert port_in_use(ports[name]), f"{name} is not listening"

        started = descendants(proc.pid)
        postmaster = int((dev_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        started.add(postmaster)
        assert len(started) > 8  # honcho, gunicorn, workers and their pools, beat, flower, redis

        # Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    time.sleep(0.5)
    left = sorted(pid for pid in started if alive(pid))
    assert not left, f"processes left behind: {left}"
    for name, port in ports.items():
        assert not port_in_use(port), f"{name} still listening on {port}"
