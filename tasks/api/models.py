"""API tokens: created, listed and revoked by `manage.py api_token` and in the admin."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

#: Every token starts with this, so a leaked one is recognisable (and greppable).
TOKEN_PREFIX = "jy"
_PREFIX = re.compile(r"[0-9a-f]{8}")
#: Last use is written at most this often per token: not one database write per request.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def hash_token(raw: str) -> str:
    """SHA-256 of the whole token, hex.

    A fast hash is right here, unlike for passwords: a token's secret part is 32 random
    bytes, so there is nothing to guess that a slow hash would protect, and the hash is
    computed on every API request.
    """
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    READ, WRITE = "read", "write"
    SCOPES = [(READ, "read: status, metrics, events"), (WRITE, "write: read, and change jobs")]

    name = models.CharField(max_length=100, unique=True, help_text="who or what uses it")
    #: The public part of the token (`jy_<prefix>_<secret>`): finds the row, shown in lists.
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(max_length=5, choices=SCOPES, default=READ)
    #: The user the token acts for, if any: apps scope what a token sees by it (a report's
    #: owner sees their reports; a staff owner sees all). A token without one is a service's.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.CASCADE, related_name="api_tokens")  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({TOKEN_PREFIX}_{self.prefix}_…, {self.scope})"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @classmethod
    def issue(cls, name: str, scope: str = READ, user=None) -> tuple[ApiToken, str]:
        """Create a token; returns the row and the raw token, which is never stored."""
        if scope not in (cls.READ, cls.WRITE):
            raise ValueError(f"scope must be read or write, not {scope!r}")
        prefix = secrets.token_hex(4)
        raw = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        with transaction.atomic():  # a duplicate name leaves an outer transaction usable
            token = cls.objects.create(
                name=name, prefix=prefix, token_hash=hash_token(raw), scope=scope, user=user
            )
        return token, raw

    def fill_new(self) -> str:
        """Give an unsaved row (the admin's add form) a fresh secret; the raw token."""
        self.prefix = secrets.token_hex(4)
        raw = f"{TOKEN_PREFIX}_{self.prefix}_{secrets.token_urlsafe(32)}"
        self.token_hash = hash_token(raw)
        return raw

    @classmethod
    def authenticate(cls, raw: str) -> ApiToken | None:
        """The live or revoked token `raw` is, or None when it is no token of ours.

        The row is found by its public prefix; the secret is checked by comparing hashes in
        constant time, so response timing tells nothing about how much of it matched.
        """
        parts = raw.split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not _PREFIX.fullmatch(parts[1]):
            return None  # not one of ours; nothing odd (a NUL byte...) reaches the database
        token = cls.objects.filter(prefix=parts[1]).first()
        if token is None or not hmac.compare_digest(token.token_hash, hash_token(raw)):
            return None
        return token

    def touch(self) -> None:
        """Record a use, at most once per LAST_USED_GRANULARITY (one conditional UPDATE)."""
        now = timezone.now()
        if self.last_used_at and now - self.last_used_at < LAST_USED_GRANULARITY:
            return
        stale = models.Q(last_used_at__isnull=True) | models.Q(
            last_used_at__lt=now - LAST_USED_GRANULARITY
        )
        ApiToken.objects.filter(stale, pk=self.pk).update(last_used_at=now)
        self.last_used_at = now

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
