"""One attempt of one delivery: sign, check the target, POST, classify the answer, record.

Where each error is decided (STYLE.md, lesson 4):

| answer | delivery | the job |
|---|---|---|
| 2xx | delivered | completes |
| 410 Gone | failed; the endpoint is disabled | PermanentError |
| 429 or 503 with Retry-After | retrying | RetryAfter: no sooner than the header says |
| 408, 429, 5xx, timeout, connection error, name not resolving | retrying | OSError: the back-off |
| any other 4xx, a 3xx past the redirect limit | failed | PermanentError |
| a refused target (guard.py) | failed, the reason recorded | PermanentError |

A retryable error on the last attempt fails the delivery for good. Each final failure
counts against the endpoint; WEBHOOK_DISABLE_AFTER_FAILURES in a row disable it.
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin

import httpx
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from notifications.models import Delivery, DeliveryAttempt, Endpoint
from notifications.notify import notify
from notifications.retry_after import retry_after_ms as read_retry_after
from notifications.webhooks import guard, signing
from tasks import PermanentError, RetryAfter

log = structlog.get_logger("jobyard.notifications.webhooks")

#: Attempts per delivery (the job type's `attempts`).
ATTEMPTS = 5
#: Bytes of a response body kept on the attempt row (the rest is not read).
EXCERPT_BYTES = 1024
REDIRECTS = (301, 302, 303, 307, 308)
RETRY_STATUSES = (408, 429)


@dataclass(frozen=True)
class Answer:
    status: int
    excerpt: str
    retry_after: str | None = None
    location: str | None = None


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle (milliseconds)."""
    return httpx.create_ssl_context()


def body_of(delivery: Delivery) -> bytes:
    """The JSON body: Standard Webhooks' `{type, timestamp, data}`, the same every attempt."""
    envelope = {"type": delivery.event_type, "timestamp": delivery.created_at.isoformat(),
                "data": delivery.payload}  # fmt: skip
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def post(url: str, headers: dict[str, str], body: bytes, *, allow_private: bool) -> Answer:
    """POST `body` to `url` through the guard, following up to WEBHOOK_MAX_REDIRECTS
    redirects (each target checked again). RefusedTarget, PermanentError, or httpx/OS
    errors for what may pass."""
    timeout = httpx.Timeout(settings.WEBHOOK_TIMEOUT_SECONDS,
                            connect=settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS)  # fmt: skip
    # trust_env=False: an HTTP(S)_PROXY from the environment would connect for us, unchecked.
    with httpx.Client(verify=_tls(), timeout=timeout, follow_redirects=False,
                      trust_env=False) as client:  # fmt: skip
        for _hop in range(settings.WEBHOOK_MAX_REDIRECTS + 1):
            target = guard.check(url, allow_private=allow_private)
            answer = _send(client, target, headers, body)
            if answer.status not in REDIRECTS or not answer.location:
                return answer
            url = urljoin(url, answer.location)
        raise PermanentError(
            f"more than {settings.WEBHOOK_MAX_REDIRECTS} redirects (last to {url[:200]})"
        )


def _send(client: httpx.Client, target: guard.Target, headers: dict[str, str],
          body: bytes) -> Answer:  # fmt: skip
    """One request to the checked address, named as the URL names it (Host, SNI)."""
    address = f"[{target.address}]" if ":" in target.address else target.address
    default_port = 443 if target.scheme == "https" else 80
    host = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and not target.host.startswith("["):
        host = (
            f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
        )
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    request = client.build_request(
        "POST", f"{target.scheme}://{address}:{target.port}{target.path}",
        headers={**headers, "host": host}, content=body, extensions=extensions,
    )  # fmt: skip
    response = client.send(request, stream=True)
    try:
        excerpt = b""
        for chunk in response.iter_raw():
            excerpt += chunk
            if len(excerpt) >= EXCERPT_BYTES:
                break  # the rest is not read: a receiver cannot make us download a movie
    finally:
        response.close()
    return Answer(
        response.status_code, excerpt[:EXCERPT_BYTES].decode("utf-8", "replace"),
        response.headers.get("retry-after"), response.headers.get("location"),
    )  # fmt: skip


def retry_after_ms(value: str | None, now: float | None = None) -> int | None:
    """Milliseconds a Retry-After header asks for, capped at WEBHOOK_MAX_RETRY_AFTER_SECONDS."""
    return read_retry_after(value, settings.WEBHOOK_MAX_RETRY_AFTER_SECONDS, now)


def deliver(delivery_id: int, *, attempt: int = 1, last: bool = True) -> dict[str, Any]:
    """Attempt delivery `delivery_id` (attempt number `attempt`, `last` when no retry
    follows); returns what the job stores, raises what the job's retry policy reads."""
    delivery = Delivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        raise PermanentError(f"no delivery {delivery_id}")
    if delivery.status in (Delivery.DELIVERED, Delivery.FAILED):
        return {"skipped": delivery.status}  # a duplicate job run: its effect happened
    endpoint = delivery.endpoint
    started_at, started = timezone.now(), time.monotonic()
    code: int | None = None
    excerpt = ""
    if not endpoint.active:
        error = PermanentError(f"endpoint {endpoint.pk} is disabled: {endpoint.disabled_reason}")
    else:
        body = body_of(delivery)
        stamp = int(time.time())
        headers = signing.headers(endpoint.secret, delivery.event_id, stamp, body)
        error = None
        try:
            answer = post(endpoint.url, headers, body, allow_private=settings.WEBHOOK_ALLOW_PRIVATE)
        except (PermanentError, OSError) as exc:
            error = exc
        except httpx.HTTPError as exc:  # timeouts, refused connections, protocol errors
            error = OSError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        else:
            code, excerpt = answer.status, answer.excerpt
            error = classify(answer)
    duration_ms = round((time.monotonic() - started) * 1000, 3)
    final = error is None or isinstance(error, PermanentError) or last
    if error is None:
        outcome = "delivered"
    elif isinstance(error, guard.RefusedTarget):
        outcome = "refused"
    else:
        outcome = "failed" if final else "retry"
    status = (
        {True: Delivery.FAILED, False: Delivery.RETRYING}[final] if error else Delivery.DELIVERED
    )
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery, number=attempt, outcome=outcome, response_code=code,
            response_excerpt=excerpt, error=str(error or ""), duration_ms=duration_ms,
            started_at=started_at, finished_at=timezone.now(),
        )  # fmt: skip
        Delivery.objects.filter(pk=delivery.pk).update(
            status=status, attempts=F("attempts") + 1, response_code=code,
            error=str(error or ""), updated_at=timezone.now(),
            delivered_at=timezone.now() if error is None else None,
        )  # fmt: skip
        if error is None:
            if endpoint.consecutive_failures:
                Endpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0)
        elif final and endpoint.active:
            gone = code == 410
            _count_failure(endpoint, "the endpoint answered 410 Gone" if gone else None)
    log.info("webhook_attempt", delivery_id=delivery.pk, endpoint_id=endpoint.pk,
             event_type=delivery.event_type, attempt=attempt, outcome=outcome,
             response_code=code, duration_ms=duration_ms, error=str(error or "") or None)  # fmt: skip
    if error is not None:
        raise error
    return {"status": "delivered", "responseCode": code, "durationMs": duration_ms}


def classify(answer: Answer) -> Exception | None:
    """None for a delivered answer, else the error that decides the job's fate."""
    status = answer.status
    if 200 <= status < 300:
        return None
    text = f"the endpoint answered {status}"
    if status == 410:
        return PermanentError(f"{text} Gone: the endpoint is disabled")
    if status in (429, 503) and (wait := retry_after_ms(answer.retry_after)) is not None:
        return RetryAfter(f"{text}, Retry-After {answer.retry_after}", wait)
    if status in RETRY_STATUSES or status >= 500:
        return OSError(text)
    if status in REDIRECTS:
        return PermanentError(f"{text} without a Location")
    return PermanentError(text)


def _count_failure(endpoint: Endpoint, disable_now: str | None) -> None:
    """A final failure: one more in a row; disable the endpoint at the limit (or now)."""
    Endpoint.objects.filter(pk=endpoint.pk).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    failures = Endpoint.objects.values_list("consecutive_failures", flat=True).get(pk=endpoint.pk)
    limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    reason = disable_now or (
        f"{failures} deliveries in a row failed" if failures >= limit else None
    )
    if reason:
        disable(endpoint.pk, reason)


def disable(endpoint_id: int, reason: str) -> bool:
    """Disable the endpoint and tell its owner, once: True when this call disabled it."""
    now = timezone.now()
    # A conditional UPDATE: of two workers failing at once, exactly one disables and notifies.
    changed = Endpoint.objects.filter(pk=endpoint_id, active=True).update(
        active=False, disabled_reason=reason[:500], disabled_at=now
    )
    if changed == 1:
        transaction.on_commit(lambda: notify_owner_disabled(endpoint_id))
    return changed == 1


def notify_owner_disabled(endpoint_id: int) -> None:
    """Tell the endpoint's owner it was disabled: an email through notify() (one Message,
    delivered by its own job), logged either way."""
    endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        return
    log.warning("webhook_endpoint_disabled", endpoint_id=endpoint.pk, url=endpoint.url,
                owner_email=endpoint.owner_email or None, reason=endpoint.disabled_reason)  # fmt: skip
    with transaction.atomic():
        if endpoint.owner_email:
            notify([endpoint.owner_email], "webhook-endpoint-disabled",
                   {"url": endpoint.url, "reason": endpoint.disabled_reason})  # fmt: skip
        Endpoint.objects.filter(pk=endpoint_id).update(owner_notified_at=timezone.now())
