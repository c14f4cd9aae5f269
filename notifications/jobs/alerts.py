"""`check-alerts`: the alert rules, every minute (notifications/alerts/)."""

from notifications import alerts
from tasks import Job, default_schedule, job_type

#: One attempt, and a timeout under the minute: a missed check is made up by the next one,
#: never queued behind it.
CHECK_SCHEDULE = "notifications-check-alerts"


@job_type("check-alerts", queue="default", attempts=1, timeout=50_000)
def check_alerts(job: Job) -> dict[str, list[str]]:
    """Apply the alert rules once: alerts opened, resolved, and still open."""
    return alerts.check().summary()


default_schedule(CHECK_SCHEDULE, "check-alerts", cron="* * * * *")
