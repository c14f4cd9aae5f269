"""The platform's Redis client: one pool per process, from settings (URL or Sentinel).

The same server, database, credentials and TLS as the broker's (project/settings.py reads
them once): a job's Celery message, which enqueue.lua writes through this client, must land
in the lists the workers' broker connections read.
"""

from __future__ import annotations

import os
import socket
from functools import cache
from typing import Any

import redis
from django.conf import settings
from redis.connection import parse_url
from redis.sentinel import Sentinel


def master_options() -> dict[str, Any]:
    """How to log in to the master Sentinel names: REDIS_URL's credentials, database and TLS."""
    url = parse_url(settings.REDIS_URL)
    options = {key: url[key] for key in ("username", "password", "db") if url.get(key)}
    if settings.REDIS_SSL:
        options.update(ssl=True, **settings.REDIS_SSL)
    return options


@cache
def _client_for_pid(pid: int) -> redis.Redis:
    # Keyed by pid: a pool inherited across fork() would share sockets with the parent.
    options = {"socket_connect_timeout": 2, "socket_timeout": 10, "health_check_interval": 30}
    if settings.REDIS_SENTINELS:
        sentinel = Sentinel(
            settings.REDIS_SENTINELS, sentinel_kwargs=settings.REDIS_SENTINEL_KWARGS
        )
        return sentinel.master_for(settings.REDIS_SENTINEL_MASTER, **options, **master_options())
    return redis.Redis.from_url(settings.REDIS_URL, **options, **(settings.REDIS_SSL or {}))


def get_redis() -> redis.Redis:
    return _client_for_pid(os.getpid())


def process_name(hostname: str | None = None) -> str:
    """How this process names itself in Redis (a job's worker, a consumer, a lease owner):
    `host:pid`, with Celery's node name as the host inside a worker."""
    return f"{hostname or socket.gethostname()}:{os.getpid()}"
