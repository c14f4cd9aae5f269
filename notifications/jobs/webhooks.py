"""deliver-webhook: one attempt of one delivery (the work is notifications.webhooks.delivery)."""

from __future__ import annotations

from notifications.webhooks.delivery import ATTEMPTS, deliver
from tasks import job_type

#: 30 s, 2 min, 8 min, 32 min between the 5 attempts (±20 %), or longer when the receiver
#: answers 429/503 with a later Retry-After.
BACKOFF = {"type": "exponential", "delay": 30_000, "factor": 4, "jitter": 0.2}


@job_type("deliver-webhook", queue="webhooks", attempts=ATTEMPTS, backoff=BACKOFF, timeout=120_000)
def deliver_webhook(job, delivery_id: int) -> dict:
    """POST delivery `delivery_id` to its endpoint; raises to retry (RetryAfter, OSError) or
    to fail for good (PermanentError), as the delivery's row records."""
    attempts = job.opts.get("attempts") or ATTEMPTS
    return deliver(
        delivery_id, attempt=job.attempts_made + 1, last=job.attempts_made + 1 >= attempts
    )
