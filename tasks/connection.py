"""The platform's Redis client: one pool per process, from settings (URL or Sentinel)."""

from __future__ import annotations

import os
import socket
from functools import cache

import redis
from django.conf import settings
from redis.sentinel import Sentinel


@cache
def _client_for_pid(pid: int) -> redis.Redis:
    # Keyed by pid: a pool inherited across fork() would share sockets with the parent.
    options = {"socket_connect_timeout": 2, "socket_timeout": 10, "health_check_interval": 30}
    if settings.REDIS_SENTINELS:
        sentinel = Sentinel(settings.REDIS_SENTINELS, sentinel_kwargs={"socket_timeout": 2})
        return sentinel.master_for(settings.REDIS_SENTINEL_MASTER, **options)
    return redis.Redis.from_url(settings.REDIS_URL, **options)


def get_redis() -> redis.Redis:
    return _client_for_pid(os.getpid())


def process_name(hostname: str | None = None) -> str:
    """How this process names itself in Redis (a job's worker, a consumer, a lease owner):
    `host:pid`, with Celery's node name as the host inside a worker."""
    return f"{hostname or socket.gethostname()}:{os.getpid()}"
