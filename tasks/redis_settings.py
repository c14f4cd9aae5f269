"""Redis settings that lose jobs, checked when a process starts and by /readyz.

An evicting Redis (`maxmemory-policy` other than `noeviction`) drops job hashes, locks and
broker lists when it fills up, silently; BullMQ warns about it for the same reason. Without
AOF a restart loses every job since the last snapshot (minutes of them, by default). AOF
is asked for where JOBYARD_REDIS_REQUIRE_AOF says, by default when DEBUG is off.

Read with INFO, not CONFIG GET: managed Redis services often disable CONFIG, never INFO.
"""

from __future__ import annotations

import threading

import structlog
from django.conf import settings

from tasks.connection import get_redis

log = structlog.get_logger("jobyard.redis")

_warned = threading.Event()


def redis_settings_problems() -> list[str]:
    """What is unsafe in the registry's Redis settings (empty: nothing). One round trip."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.info("memory")
    pipe.info("persistence")
    memory, persistence = pipe.execute()
    problems = []
    policy = memory.get("maxmemory_policy", "noeviction")
    if policy != "noeviction":
        problems.append(
            f"maxmemory-policy is {policy}, not noeviction: a full Redis evicts jobs silently"
        )
    if settings.JOBYARD["REDIS_REQUIRE_AOF"] and not int(persistence.get("aof_enabled", 0)):
        problems.append("appendonly is off: a Redis restart loses the jobs since its last snapshot")
    return problems


def warn_once(process: str) -> list[str]:
    """Log `redis_settings_unsafe` (a warning) the first time this process finds a problem;
    the problems, or [] (none, or Redis not reachable: /readyz says that)."""
    try:
        problems = redis_settings_problems()
    except Exception:  # Redis away: not this check's to report
        return []
    if problems and not _warned.is_set():
        _warned.set()
        log.warning("redis_settings_unsafe", process=process, problems=problems)
    return problems
