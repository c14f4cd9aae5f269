"""The `Retry-After` header an HTTP provider or receiver answers (RFC 9110): seconds, or an
HTTP date. One reading for every channel that honours it (webhooks, SMS, WhatsApp)."""

from __future__ import annotations

import time
from datetime import UTC
from email.utils import parsedate_to_datetime


def retry_after_ms(value: str | None, cap_seconds: float, now: float | None = None) -> int | None:
    """Milliseconds `value` asks to wait, at most `cap_seconds`; None when it says nothing
    readable (no header, or neither a number nor a date)."""
    if not value:
        return None
    cap = int(cap_seconds * 1000)
    value = value.strip()
    if value.isdigit():
        return min(int(value) * 1000, cap)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    wait = when.timestamp() - (now if now is not None else time.time())
    return min(max(0, round(wait * 1000)), cap)
