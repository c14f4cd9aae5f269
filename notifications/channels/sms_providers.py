"""SMS and WhatsApp providers: one interface, `send(kind, to, body, key) -> provider id`,
raising DeliveryError (`permanent`, or `retry_after_ms` when the provider said when).

Where each answer of the HTTP provider is decided (STYLE.md, lesson 4):

| answer | the message | the job |
|---|---|---|
| 200/201/202 | sent, the provider's `sid` (or `id`) its provider id | completes |
| 429 (or 503) with Retry-After | queued, the answer in last_error | RetryAfter: no sooner |
| 408, 429, 5xx, timeout, connection error | queued | retried with its back-off |
| any other 4xx (a 400: a number the provider refuses) | failed | PermanentError |
"""

from __future__ import annotations

import httpx
import structlog
from django.conf import settings

from notifications.channels import DeliveryError
from notifications.retry_after import retry_after_ms as read_retry_after

log = structlog.get_logger("jobyard.notifications.sms")

#: Bytes of an error answer kept in the message's last_error.
EXCERPT = 300


class ConsoleProvider:
    """Prints the message in the worker's log (the default: local development)."""

    def send(self, kind: str, to: str, body: str, key: str) -> str:
        sender = settings.WHATSAPP_FROM if kind == "whatsapp" else settings.SMS_FROM
        log.info("sms_console", kind=kind, to=to, sender=sender, body=body, key=key)
        return f"console-{key}"


def retry_after_ms(value: str | None, now: float | None = None) -> int | None:
    """Milliseconds a Retry-After header asks for, capped at SMS_MAX_RETRY_AFTER_SECONDS."""
    return read_retry_after(value, settings.SMS_MAX_RETRY_AFTER_SECONDS, now)


class HttpProvider:
    """Twilio's Messages API shape: `POST {SMS_PROVIDER_URL}` with a form of From, To, Body,
    basic auth with SMS_ACCOUNT_SID / SMS_AUTH_TOKEN, and an `Idempotency-Key` header (the
    message's job id, the same on every attempt) for providers that drop repeats by it.
    The URL is the operator's setting, not user input: no SSRF guard (webhooks/guard.py)."""

    def send(self, kind: str, to: str, body: str, key: str) -> str:
        sender = settings.WHATSAPP_FROM if kind == "whatsapp" else settings.SMS_FROM
        if kind == "whatsapp":
            sender, to = f"whatsapp:{sender}", f"whatsapp:{to}"
        timeout = httpx.Timeout(settings.SMS_TIMEOUT_SECONDS,
                                connect=settings.SMS_CONNECT_TIMEOUT_SECONDS)  # fmt: skip
        try:
            # trust_env=False: no proxy from the environment between us and the provider.
            with httpx.Client(timeout=timeout, trust_env=False) as client:
                response = client.post(
                    settings.SMS_PROVIDER_URL, data={"From": sender, "To": to, "Body": body},
                    auth=(settings.SMS_ACCOUNT_SID, settings.SMS_AUTH_TOKEN),
                    headers={"Idempotency-Key": key},
                )  # fmt: skip
        except httpx.HTTPError as exc:  # timeouts, refused connections, resets
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        status, text = response.status_code, response.text[:EXCERPT]
        if status in (200, 201, 202):
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            found = answer.get("sid") or answer.get("id") if isinstance(answer, dict) else None
            return str(found or key)
        detail = f"provider answered {status}: {text}"
        if status in (429, 503) and (wait := retry_after_ms(response.headers.get("retry-after"))):
            raise DeliveryError(detail, retry_after_ms=wait)
        if status in (408, 429) or status >= 500:
            raise DeliveryError(detail)
        raise DeliveryError(detail, permanent=True)


def provider() -> ConsoleProvider | HttpProvider:
    return HttpProvider() if settings.SMS_PROVIDER == "http" else ConsoleProvider()


__all__ = ["ConsoleProvider", "HttpProvider", "provider", "retry_after_ms"]
