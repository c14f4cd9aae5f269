"""Token checks, cached in Redis: the API's reads keep answering while PostgreSQL is down.

Tokens live in PostgreSQL (tasks.api.models.ApiToken), so without a cache every request
needs it, the reads that are answered from Redis alone included. A live token, once found
in PostgreSQL, is trusted for TOKEN_CACHE_SECONDS (JOBYARD_API_TOKEN_CACHE_SECONDS, 30 s)
without asking again, from a Redis entry every web process shares. Past that it is asked
again; if PostgreSQL is then unreachable, the entry stands in for it for up to
TOKEN_STALE_SECONDS after the last successful check (JOBYARD_API_TOKEN_STALE_SECONDS, 1 h;
0: never), and a token with no entry is a 503. Unknown and revoked tokens are never cached.

Revocation: revoking a token through the app (`api_token revoke`, the admin, deleting it)
drops its entry at once, in every process; a change made behind the app's back (SQL) takes
effect within TOKEN_CACHE_SECONDS, or, while PostgreSQL is unreachable, when it is back.

The entry is keyed by the token's SHA-256 (what PostgreSQL stores anyway), never the token.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from tasks import keys
from tasks.api.models import LAST_USED_GRANULARITY, ApiToken, hash_token
from tasks.connection import get_redis

log = structlog.get_logger("jobyard.api")

DATABASE_ERRORS = (OperationalError, InterfaceError)


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def _conf() -> tuple[float, float]:
    conf = settings.JOBYARD_API
    return float(conf["TOKEN_CACHE_SECONDS"]), float(conf["TOKEN_STALE_SECONDS"])


def lookup(raw: str) -> ApiToken | None:
    """The token `raw` is (live or revoked), None when it is none of ours; the database's
    error when it must be asked and cannot be (and no entry may stand in for it)."""
    fresh_for, stale_for = _conf()
    token_hash = hash_token(raw)
    cached, age = _read(token_hash) if fresh_for > 0 else (None, 0.0)
    if cached is not None and age < fresh_for:
        return cached
    try:
        token = ApiToken.authenticate(raw)
    except DATABASE_ERRORS:
        if cached is not None and age < max(fresh_for, stale_for):
            log.warning("api_token_from_cache", token=cached.name, checked_s_ago=round(age))
            return cached
        raise
    if token is not None and not token.revoked and fresh_for > 0:
        _write(token)
    elif cached is not None:
        forget([token_hash])
    return token


def touch(token: ApiToken) -> None:
    """Record a use (at most once per LAST_USED_GRANULARITY); never fails the request: a
    database that is away only means a last use recorded late."""
    now = timezone.now()
    if token.last_used_at and now - token.last_used_at < LAST_USED_GRANULARITY:
        return
    try:
        token.touch()
    except DATABASE_ERRORS:
        return
    checked = getattr(token, "_cache_checked_ms", None)
    if checked is not None:  # it came from the cache: keep its last use there
        _write(token, checked)


def forget(token_hashes: Iterable[str]) -> None:
    """Drop these tokens' entries, in every process at once (Redis away: they run out)."""
    names = [keys.api_token(h) for h in token_hashes]
    if names:
        with contextlib.suppress(redis.exceptions.RedisError):
            get_redis().delete(*names)


def _read(token_hash: str) -> tuple[ApiToken | None, float]:
    """(the cached token, seconds since it was checked in PostgreSQL), or (None, 0)."""
    try:
        raw = get_redis().get(keys.api_token(token_hash))
    except redis.exceptions.RedisError:
        return None, 0.0  # the cache is an aid: PostgreSQL decides
    if raw is None:
        return None, 0.0
    try:
        entry: dict[str, Any] = json.loads(raw)
        used = entry["lastUsedAt"]
        token = ApiToken(id=entry["id"], name=entry["name"], prefix=entry["prefix"],
                         scope=entry["scope"], token_hash=token_hash, user_id=entry.get("userId"),
                         last_used_at=datetime.fromtimestamp(used / 1000, UTC) if used else None)  # fmt: skip
        checked = int(entry["checkedAt"])
    except (ValueError, KeyError, TypeError):
        return None, 0.0  # not an entry of ours: PostgreSQL decides, and it is rewritten
    token._cache_checked_ms = checked  # type: ignore[attr-defined]
    return token, max(0.0, time.time() - checked / 1000)


def _write(token: ApiToken, checked_ms: int | None = None) -> None:
    fresh_for, stale_for = _conf()
    entry = {"id": token.pk, "name": token.name, "prefix": token.prefix, "scope": token.scope,
             "userId": token.user_id,
             "lastUsedAt": _ms(token.last_used_at),
             "checkedAt": checked_ms or int(time.time() * 1000)}  # fmt: skip
    lifetime = max(fresh_for, stale_for) - (time.time() - entry["checkedAt"] / 1000)
    if lifetime <= 0:
        return
    token._cache_checked_ms = entry["checkedAt"]  # type: ignore[attr-defined]
    with contextlib.suppress(redis.exceptions.RedisError):
        get_redis().set(
            keys.api_token(token.token_hash), json.dumps(entry), px=int(lifetime * 1000)
        )


@receiver(post_save, sender=ApiToken, dispatch_uid="jobyard-api-token-saved")
@receiver(post_delete, sender=ApiToken, dispatch_uid="jobyard-api-token-deleted")
def _changed(sender: type, instance: ApiToken, **kwargs: Any) -> None:
    """Revoked (ApiToken.revoke saves it), edited or deleted: the entry goes at once."""
    forget([instance.token_hash])
