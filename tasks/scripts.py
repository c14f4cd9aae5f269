"""The registry's Lua scripts: each state change is one script, so each is atomic.

Every script is the shared prelude (tasks/lua/prelude.lua) followed by its own body; they
are sent once per process with SCRIPT LOAD semantics (redis-py's EVALSHA with fallback).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from redis.commands.core import Script

from tasks.connection import get_redis

LUA_DIR = Path(__file__).resolve().parent / "lua"
NAMES = (
    "enqueue", "claim", "complete", "fail", "promote", "stalled", "extend_locks",
    "progress", "pause", "retry", "remove", "clean", "lease", "metrics", "take", "release",
)  # fmt: skip


@cache
def _source(name: str) -> str:
    return (LUA_DIR / "prelude.lua").read_text() + "\n" + (LUA_DIR / f"{name}.lua").read_text()


@cache
def _script(name: str, client_id: int) -> Script:
    return Script(get_redis(), _source(name))


def script(name: str) -> Script:
    """Script `name`, bound to this process's client."""
    return _script(name, id(get_redis()))


def run(name: str, *args: Any, client: Any = None) -> Any:
    """Run script `name` with ARGV = (key prefix, *args); `client` may be a pipeline."""
    bound = script(name)
    return bound(keys=[], args=[prefix(), *args], client=client or bound.registered_client)


def prefix() -> str:
    return settings.JOBYARD["KEY_PREFIX"]


# Key names the Python side reads; the scripts build the same names from the same parts.
def job_key(queue: str, job_id: str) -> str:
    return f"{prefix()}{queue}:j:{job_id}"


def state_key(queue: str, state: str) -> str:
    return f"{prefix()}{queue}:{state}"


def events_key(queue: str) -> str:
    return f"{prefix()}{queue}:events"


def stats_key(queue: str, minute: int) -> str:
    return f"{prefix()}{queue}:stats:{minute}"


def workers_key() -> str:
    return f"{prefix()}workers"


def worker_key(name: str) -> str:
    return f"{prefix()}worker:{name}"
