"""Private Redis and PostgreSQL for the two commands: bin/run (the system) and bin/test.

Each server is started by us, on a port of ours, with its data and pid files in a folder of
ours, and stopped by us by its pid; nothing here touches a service it did not start. This
module does not import Django: it runs before the environment Django reads exists.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DEV_DIR = BASE_DIR / ".dev"
#: Must match the defaults in project/settings.py (DEV_POSTGRES_PORT, DEV_REDIS_PORT).
DEV_POSTGRES_PORT = 54329
DEV_REDIS_PORT = 63790
WEB_PORT = 8000
FLOWER_PORT = 5555
#: Everything in the Procfile but `release`, which bin/run does itself before starting them.
PROCESSES = [
    "web",
    "worker",
    "worker_io",
    "worker_reports",
    "worker_cleanup",
    "worker_catalog",
    "recorder",
    "webhook_events",
    "beat",
    "flower",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(check, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


class RedisServer:
    """A redis-server child process on 127.0.0.1:port."""

    def __init__(self, port: int, data_dir: Path, *, persistent: bool = False) -> None:
        self.port = port
        self.data_dir = data_dir
        self.persistent = persistent
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server is not installed (bin/run and bin/test install it)")
        if port_in_use(self.port):
            raise RuntimeError(f"port {self.port} is taken; is another run using it?")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes"] if self.persistent else ["--save", "", "--appendonly", "no"]
        )
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--daemonize", "no", "--pidfile", str(self.data_dir / "redis.pid"), *persistence],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        _wait_for(self._ping, f"redis on port {self.port}", 15)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _pg_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("PostgreSQL server binaries not found (bin/run and bin/test install them)")


class PostgresServer:
    """A PostgreSQL cluster in data_dir on 127.0.0.1:port, trust auth, superuser `jobyard`."""

    user = "jobyard"

    def __init__(self, port: int, data_dir: Path, *, durable: bool = True) -> None:
        self.port = port
        self.data_dir = data_dir
        self.durable = durable
        self.bindir = _pg_bindir()

    def url(self, database: str = "jobyard") -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}"

    def _as_owner(self, args: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root: run its tools as the `postgres` system user.
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args

    def _run(self, args: list[str]) -> None:
        result = subprocess.run(self._as_owner(args), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}")

    def start(self) -> None:
        if port_in_use(self.port):
            raise RuntimeError(f"port {self.port} is taken; is another run using it?")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
        if not (self.data_dir / "PG_VERSION").exists():
            self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                       "--auth=trust", "-E", "UTF8", "--no-instructions",
                       *([] if self.durable else ["--no-sync"])])  # fmt: skip
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir}"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                   str(self.data_dir / "server.log"), "-w", "-t", "60", "-o", options, "start"])  # fmt: skip
        self.create_database("jobyard")

    def create_database(self, name: str) -> None:
        psql = [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                "-d", "postgres", "-tAc"]  # fmt: skip
        exists = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        if not exists:
            subprocess.run([*psql, f'CREATE DATABASE "{name}"'], capture_output=True, check=True)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-m",
                        "fast",
                        "-w",
                        "stop",
                    ]
                )


@contextlib.contextmanager
def services(redis: RedisServer, postgres: PostgresServer) -> Iterator[None]:
    """Start both servers; stop them whatever happens, SIGTERM included."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        redis.start()
        postgres.start()
        yield
    finally:
        redis.stop()
        postgres.stop()
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def private_services(prefix: str) -> Iterator[tuple[RedisServer, PostgresServer, Path]]:
    """A Redis and a PostgreSQL of their own on free ports, with their data in a fresh
    temporary folder that goes with them (the test command and the benchmarks)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(tmp, 0o755)  # the postgres user must reach its data folder inside
    redis = RedisServer(free_port(), tmp / "redis")
    postgres = PostgresServer(free_port(), tmp / "postgres", durable=False)
    try:
        with services(redis, postgres):
            yield redis, postgres, tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_tests(pytest_args: list[str]) -> int:
    with private_services("jobyard-test-") as (redis, postgres, tmp):
        env = _child_env(
            DATABASE_URL=postgres.url(),
            REDIS_URL=redis.url,
            JOBYARD_TEST_TMP=str(tmp),
            # Importing `project` here set project.settings; the tests add their job types.
            DJANGO_SETTINGS_MODULE="tests.settings",
            DEBUG="true",
            LOG_FORMAT="console",
        )
        code = subprocess.call(
            [sys.executable, "-m", "pytest", *pytest_args], env=env, cwd=BASE_DIR
        )
        if code == 5:
            print("bin/test: pytest collected no tests; that is a failure here", file=sys.stderr)
            code = 1
        return code


def _child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(overrides)
    return env


def _secret(path: Path, make) -> str:
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], env=env, cwd=BASE_DIR, check=True)


def _stop_group(process: subprocess.Popen, grace: float) -> None:
    """Stop a process we started in its own session, then anything left in its group."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_system(
    dev_dir: Path = DEV_DIR,
    redis_port: int = DEV_REDIS_PORT,
    postgres_port: int = DEV_POSTGRES_PORT,
    web_port: int = WEB_PORT,
    flower_port: int = FLOWER_PORT,
) -> int:
    dev_dir.mkdir(exist_ok=True)
    os.chmod(dev_dir, 0o755)  # the postgres user must reach its data folder inside
    redis = RedisServer(redis_port, dev_dir / "redis", persistent=True)
    postgres = PostgresServer(postgres_port, dev_dir / "postgres")
    for port, what in ((web_port, "web"), (flower_port, "flower")):
        if port_in_use(port):
            print(
                f"bin/run: port {port} ({what}) is taken; stop whatever uses it first",
                file=sys.stderr,
            )
            return 1
    admin_password = _secret(dev_dir / "admin-password", lambda: secrets.token_urlsafe(12))
    flower_auth = os.environ.get("FLOWER_BASIC_AUTH") or _secret(
        dev_dir / "flower-auth", lambda: f"admin:{secrets.token_urlsafe(12)}"
    )
    env = _child_env(
        DATABASE_URL=postgres.url(),
        REDIS_URL=redis.url,
        FLOWER_BASIC_AUTH=flower_auth,
        FLOWER_PORT=str(flower_port),
        FLOWER_URL=f"http://127.0.0.1:{flower_port}/",
        PYTHONUNBUFFERED="1",
    )
    honcho: subprocess.Popen | None = None
    with services(redis, postgres):
        try:
            _manage(env, "migrate", "--noinput")
            _manage(env, "setup_schedules")
            result = subprocess.run(
                [sys.executable, "manage.py", "createsuperuser", "--noinput"],
                env={**env, "DJANGO_SUPERUSER_USERNAME": "admin",
                     "DJANGO_SUPERUSER_PASSWORD": admin_password,
                     "DJANGO_SUPERUSER_EMAIL": "admin@localhost"},
                cwd=BASE_DIR, capture_output=True, text=True,
            )  # fmt: skip
            if result.returncode != 0 and "already taken" not in result.stderr:
                print(result.stderr, file=sys.stderr)
                return 1
            honcho = subprocess.Popen(
                [str(Path(sys.executable).parent / "honcho"), "start", "-f", "Procfile",
                 "-p", str(web_port), *PROCESSES],
                env=env, cwd=BASE_DIR, start_new_session=True,
            )  # fmt: skip
            _wait_for(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=1).status == 200,
                "web", 60,
            )  # fmt: skip
            print(
                f"\n  Jobyard is up.\n"
                f"  admin:   http://127.0.0.1:{web_port}/admin/  login admin / {admin_password}\n"
                f"  flower:  http://127.0.0.1:{flower_port}/  login {flower_auth.replace(':', ' / ', 1)}\n"
                f"  redis:   {redis.url}    postgres: {postgres.url()}\n"
                f"  Ctrl-C stops everything this command started.\n",
                flush=True,
            )
            _manage(env, "ping", "--timeout", "60")
            return honcho.wait()
        except KeyboardInterrupt:
            print("\nbin/run: stopping", flush=True)
            return 0
        finally:
            if honcho is not None:
                _stop_group(honcho, grace=20)


def main() -> None:
    # A job started with `&` by a script inherits SIGINT ignored; Ctrl-C must still stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(prog="python -m project.localdev")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole system with private Redis and PostgreSQL")
    run.add_argument("--dir", type=Path, default=DEV_DIR, help="data, pid files and secrets")
    run.add_argument("--redis-port", type=int, default=DEV_REDIS_PORT)
    run.add_argument("--postgres-port", type=int, default=DEV_POSTGRES_PORT)
    run.add_argument("--web-port", type=int, default=WEB_PORT)
    run.add_argument("--flower-port", type=int, default=FLOWER_PORT)
    sub.add_parser(
        "test", help="run the tests against private Redis and PostgreSQL; the rest goes to pytest"
    )
    args, rest = parser.parse_known_args()
    if rest and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "run":
            code = run_system(
                args.dir, args.redis_port, args.postgres_port, args.web_port, args.flower_port
            )
        else:
            code = run_tests(rest)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
