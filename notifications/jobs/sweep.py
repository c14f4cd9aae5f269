"""`sweep-notifications`: lost delivery jobs enqueued again, old rate-limit counters pruned
(notifications/sweep.py), every five minutes."""

from notifications import sweep
from tasks import Job, default_schedule, job_type

SWEEP_SCHEDULE = "notifications-sweep"


# One attempt, a timeout under the period: a missed sweep is made up by the next one.
@job_type("sweep-notifications", queue="cleanup", attempts=1, timeout=240_000)
def sweep_notifications(job: Job) -> dict:
    """Enqueue again the delivery jobs of messages and webhook deliveries whose job is
    gone; prune the per-domain email counters older than an hour."""
    return sweep.sweep()


default_schedule(SWEEP_SCHEDULE, "sweep-notifications", cron="*/5 * * * *")
