"""How many event streams may be open at once: per web process, and per token or user.

Under WSGI an open stream holds one of its process's threads for up to SSE_MAX_SECONDS. With
every thread holding one, nothing else is answered, /healthz and /readyz included, and a
liveness probe restarts a healthy web. So a process opens at most SSE_MAX_STREAMS streams
(by default WEB_THREADS - 2) and answers the next `503 stream_capacity`: the threads left
answer everything else. And one caller (a token, or a staff user's session) holds at most
SSE_MAX_STREAMS_PER_TOKEN streams across every process, counted in Redis (`429
too_many_streams`), so that one client cannot take every slot. Both answers carry a
Retry-After: when the oldest of the streams in the way reaches its max lifetime.

A caller's streams are leases in a Redis sorted set (member `<opened ms>:<uuid>`, score the
lease's end): an open stream renews its lease as it goes and removes it when it ends, and
the lease of a process that died runs out after LEASE_SECONDS.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings

from tasks import keys
from tasks.api.errors import ApiError
from tasks.connection import get_redis

#: A lease not renewed for this long belongs to a stream that is gone (its process died).
LEASE_SECONDS = 30.0
#: How often an open stream renews its lease (its loop comes round every 5 s at most).
RENEW_SECONDS = 10.0
#: A process slot older than the max lifetime plus this was never released (a server that
#: neither ran nor closed the response): it no longer counts.
SLOT_GRACE_SECONDS = 60.0

_lock = threading.Lock()
#: This process's open streams: slot id -> time.monotonic() when it opened.
_open: dict[str, float] = {}


def _retry_after(opened: list[float], now: float, max_seconds: float) -> str:
    """Seconds until the oldest of `opened` ends by itself (at least 1)."""
    wait = min(opened) + max_seconds - now if opened else max_seconds
    return str(max(1, math.ceil(wait)))


def open_in_process() -> int:
    with _lock:
        return len(_open)


class Lease:
    """One open stream's place: in this process, and among its caller's leases in Redis."""

    def __init__(self, caller: str) -> None:
        conf = settings.JOBYARD_API
        self.max_seconds = float(conf["SSE_MAX_SECONDS"])
        self.slot = uuid.uuid4().hex
        self.key = keys.api_streams(caller)
        self.member = ""
        self.renewed = 0.0
        self.released = False
        self._take_slot(conf["SSE_MAX_STREAMS"])
        try:
            self._take_lease(conf["SSE_MAX_STREAMS_PER_TOKEN"])
        except BaseException:
            self._free_slot()
            raise

    def _take_slot(self, cap: int) -> None:
        now = time.monotonic()
        with _lock:
            stale = now - self.max_seconds - SLOT_GRACE_SECONDS
            for slot in [s for s, opened in _open.items() if opened < stale]:
                del _open[slot]
            if len(_open) >= cap:
                retry = _retry_after(list(_open.values()), now, self.max_seconds)
                raise ApiError(
                    503, "stream_capacity",
                    f"this server process has its {cap} event streams open "
                    "(JOBYARD_SSE_MAX_STREAMS); retry later",
                    headers={"Retry-After": retry},
                )  # fmt: skip
            _open[self.slot] = now

    def _free_slot(self) -> None:
        with _lock:
            _open.pop(self.slot, None)

    def _take_lease(self, cap: int) -> None:
        now_ms = int(time.time() * 1000)
        self.member = f"{now_ms}:{self.slot}"
        pipe = get_redis().pipeline(transaction=True)
        pipe.zremrangebyscore(self.key, "-inf", now_ms)
        pipe.zadd(self.key, {self.member: now_ms + LEASE_SECONDS * 1000})
        pipe.zrange(self.key, 0, -1)
        pipe.pexpire(self.key, int(LEASE_SECONDS * 1000))
        members = pipe.execute()[2]
        self.renewed = time.monotonic()
        if len(members) <= cap:
            return
        get_redis().zrem(self.key, self.member)
        opened = [int(m.split(b":", 1)[0]) / 1000 for m in members if m != self.member.encode()]
        raise ApiError(
            429, "too_many_streams",
            f"this token (or user) has its {cap} event streams open "
            "(JOBYARD_SSE_MAX_STREAMS_PER_TOKEN); close one or retry later",
            headers={"Retry-After": _retry_after(opened, now_ms / 1000, self.max_seconds)},
        )  # fmt: skip

    def renew(self) -> None:
        """Called as the stream goes: the lease outlives the next call by far."""
        if self.released or time.monotonic() - self.renewed < RENEW_SECONDS:
            return
        now_ms = int(time.time() * 1000)
        pipe = get_redis().pipeline(transaction=True)
        pipe.zadd(self.key, {self.member: now_ms + LEASE_SECONDS * 1000})
        pipe.pexpire(self.key, int(LEASE_SECONDS * 1000))
        pipe.execute()
        self.renewed = time.monotonic()

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self._free_slot()
        # Redis away: the lease runs out by itself within LEASE_SECONDS.
        with contextlib.suppress(redis.exceptions.RedisError):
            get_redis().zrem(self.key, self.member)


class Held:
    """A stream's chunks that give its lease back when they end or the server closes them.

    The WSGI server calls close() on the response whatever happens (Django passes it on to
    this object), also when the stream was never iterated: a generator's own `finally`
    would not run then.
    """

    def __init__(self, chunks: Iterator[str], lease: Lease) -> None:
        self.chunks = chunks
        self.lease = lease

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self.chunks
        finally:
            self.close()

    def close(self) -> None:
        try:
            close: Any = getattr(self.chunks, "close", None)
            if close is not None:
                close()
        finally:
            self.lease.release()
