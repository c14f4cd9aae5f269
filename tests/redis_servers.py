"""Redis servers of a test's own, beside the one bin/test started: a TLS-only server with
certificates made for it, and a Sentinel-managed master, replica and three sentinels.
Each is Debian's `redis-server`, bound to 127.0.0.1, stopped by its pid.

The test process read its settings at start; `settings_for(env)` says what project.settings
makes of another environment (in a child process, as a worker started with that
environment reads them), and `registry_on(values)` points this process's registry client
there for a while.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from django.test import override_settings

from project.localdev import free_port

BASE_DIR = Path(__file__).resolve().parent.parent

#: The settings a Redis client is built from: the registry's (tasks/connection.py) and
#: Celery's (CELERY_ names).
REDIS_SETTINGS = (
    "REDIS_URL", "REDIS_SSL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER",
    "REDIS_SENTINEL_KWARGS", "CELERY_BROKER_URL", "CELERY_BROKER_USE_SSL",
    "CELERY_BROKER_TRANSPORT_OPTIONS", "CELERY_REDIS_BACKEND_USE_SSL",
    "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS", "CELERY_RESULT_BACKEND",
)  # fmt: skip


def settings_for(env: dict[str, str]) -> dict[str, Any]:
    """REDIS_SETTINGS as project.settings reads them from this environment plus `env`."""
    code = (
        "import json, project.settings as s;"
        f"print(json.dumps({{n: getattr(s, n) for n in {REDIS_SETTINGS!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, cwd=BASE_DIR,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    values = json.loads(result.stdout.splitlines()[-1])
    values["REDIS_SENTINELS"] = [tuple(pair) for pair in values["REDIS_SENTINELS"]]
    return values


@contextlib.contextmanager
def registry_on(values: dict[str, Any]) -> Iterator[None]:
    """This process's registry client (tasks.connection) built from `values` meanwhile."""
    from tasks.connection import _client_for_pid

    _client_for_pid.cache_clear()
    try:
        with override_settings(**{k: v for k, v in values.items() if k.startswith("REDIS_")}):
            yield
    finally:
        _client_for_pid.cache_clear()


def celery_app_for(values: dict[str, Any]):
    """A Celery app of its own on the broker `values` name (the project's app keeps its own:
    its control commands publish through its producer pool, whatever connection is given)."""
    from celery import Celery

    other = Celery("jobyard-test", set_as_current=False)
    other.conf.update(
        broker_url=values["CELERY_BROKER_URL"],
        broker_use_ssl=values["CELERY_BROKER_USE_SSL"],
        broker_transport_options=values["CELERY_BROKER_TRANSPORT_OPTIONS"],
        redis_backend_use_ssl=values["CELERY_REDIS_BACKEND_USE_SSL"],
        result_backend=values["CELERY_RESULT_BACKEND"],
        result_backend_transport_options=values["CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS"],
        accept_content=["json"],
        result_accept_content=["json"],
    )
    return other


# --- servers ---------------------------------------------------------------------------------


class Server:
    """One `redis-server` child process (a data node or a sentinel)."""

    def __init__(self, name: str, port: int, args: list[str], folder: Path) -> None:
        self.name, self.port, self.folder = name, port, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / f"{name}.log"
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (bin/test installs it)"
        self.process = subprocess.Popen(
            [binary, *args], cwd=folder, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL, as a crashed host: no shutdown, no last writes."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_until(condition, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if value := condition():
                return value
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s (last error: {last!r})")


COMMON = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]


def make_certs(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Jobyard test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    for name, usage, san in (("server", "serverAuth", "subjectAltName=IP:127.0.0.1\n"),
                             ("client", "clientAuth", "")):  # fmt: skip
        (folder / f"{name}.ext").write_text(
            f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n{san}"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        )
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=jobyard-test-{name}")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-extfile", f"{name}.ext")  # fmt: skip
    return {name: folder / name for name in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}  # fmt: skip


class TlsRedis(Server):
    """TLS only (`--port 0`: no plain port), and clients must show a certificate."""

    def __init__(self, folder: Path, certs: dict[str, Path]) -> None:
        self.certs = certs
        port = free_port()
        super().__init__("tls", port, [
            "--port", "0", "--tls-port", str(port), *COMMON, "--dir", str(folder),
            "--tls-cert-file", str(certs["server.pem"]), "--tls-key-file", str(certs["server.key"]),
            "--tls-ca-cert-file", str(certs["ca.pem"]), "--tls-auth-clients", "yes",
        ], folder)  # fmt: skip
        try:
            wait_until(lambda: self.client().ping(), 15, f"TLS redis on {port} answering")
        except BaseException:
            self.stop()
            raise

    def client(self, **kwargs: Any) -> redis.Redis:
        options = {
            "ssl_ca_certs": str(self.certs["ca.pem"]),
            "ssl_certfile": str(self.certs["client.pem"]),
            "ssl_keyfile": str(self.certs["client.key"]),
            **kwargs,
        }
        return redis.Redis("127.0.0.1", self.port, ssl=True, socket_timeout=5, **options)


class SentinelCluster:
    """A master, a replica of it, and three sentinels watching it as `master_name`, every
    one of them asking for `password` (sentinels included), with short failure timings."""

    def __init__(self, folder: Path, password: str, master_name: str = "jobs") -> None:
        self.folder, self.password, self.master_name = folder, password, master_name
        auth = ["--requirepass", password, "--masterauth", password]
        master_port, replica_port = free_port(), free_port()
        self.nodes = {
            master_port: Server("master", master_port,
                                ["--port", str(master_port), *COMMON, *auth], folder / "master"),
            replica_port: Server("replica", replica_port,
                                 ["--port", str(replica_port), *COMMON, *auth,
                                  "--replicaof", "127.0.0.1", str(master_port)],
                                 folder / "replica"),
        }  # fmt: skip
        self.sentinels: list[Server] = []
        for index in range(3):
            port = free_port()
            conf = folder / f"sentinel{index}" / "sentinel.conf"
            conf.parent.mkdir(parents=True)
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {conf.parent}\n"
                f"sentinel monitor {master_name} 127.0.0.1 {master_port} 2\n"
                f"sentinel auth-pass {master_name} {password}\n"
                f"sentinel down-after-milliseconds {master_name} 1000\n"
                f"sentinel failover-timeout {master_name} 5000\n"
                f"requirepass {password}\nsentinel sentinel-pass {password}\n"
            )
            self.sentinels.append(
                Server(f"sentinel{index}", port, [str(conf), "--sentinel"], conf.parent)
            )
        try:
            wait_until(
                self._settled, 30, "sentinels watching the master, its replica and each other"
            )
        except BaseException:  # the fixture never gets them: stop them here
            self.stop()
            raise

    @property
    def addresses(self) -> str:
        """REDIS_SENTINELS"""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def sentinel_client(self, index: int = 0) -> redis.Redis:
        return redis.Redis("127.0.0.1", self.sentinels[index].port, password=self.password,
                           socket_timeout=2, decode_responses=True)  # fmt: skip

    def node_client(self, port: int, db: int = 0) -> redis.Redis:
        return redis.Redis("127.0.0.1", port, db=db, password=self.password, socket_timeout=2)

    def master_port(self, index: int = 0) -> int:
        _, port = self.sentinel_client(index).sentinel_get_master_addr_by_name(self.master_name)
        return int(port)

    def _settled(self) -> bool:
        for index in range(3):
            info = self.sentinel_client(index).sentinel_master(self.master_name)
            if int(info["num-slaves"]) != 1 or int(info["num-other-sentinels"]) != 2:
                return False
        replica = [port for port in self.nodes if port != self.master_port()][0]
        return self.node_client(replica).info("replication")["master_link_status"] == "up"

    def replicated(self) -> bool:
        """The replica has every write the master has (nothing acknowledged is only there)."""
        info = self.node_client(self.master_port()).info("replication")
        return info.get("slave0", {}).get("offset") == info["master_repl_offset"]

    def kill_master(self) -> int:
        """SIGKILL the current master by its pid; its port."""
        port = self.master_port()
        self.nodes[port].kill()
        return port

    def stop(self) -> None:
        for server in [*self.sentinels, *self.nodes.values()]:
            server.stop()
