"""`send-email`, `deliver-email`, `deliver-inapp`: thin entry points over
notifications/delivery.py.

Two shapes, one delivery: `send-email {to, subject, body, html?, attachments?}` is the
direct one (the trigger API, the CLI, the admin form), which records its own Message row
(found again by job id on a rerun) and delivers it; `deliver-email` / `deliver-inapp
{messageId}` deliver a row notify() wrote. (No `from __future__ import annotations`: the
schema is built from the model's annotations.)
"""

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from notifications import delivery
from notifications.channels import DeliveryError, email
from notifications.models import Message
from tasks import Job, PermanentError, RetryAfter, job_type

#: Email's retry policy: SMTP 4xx, connection errors and the per-domain rate limit retry
#: (at 5 s, 10 s, 20 s, 40 s, 80 s, jittered); a 5xx or a bad address fails at once.
RETRY = {"attempts": 6, "backoff": {"type": "exponential", "delay": 5000, "factor": 2,
                                    "jitter": 0.2}}  # fmt: skip


class SendEmailParams(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
    to: str = Field(max_length=254)
    subject: str = Field(min_length=1, max_length=998)
    body: str
    html: str | None = None
    #: Names of files in default_storage (a report's `file`), attached by their base name.
    attachments: list[str] = Field(default_factory=list, max_length=10)

    @field_validator("to")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        return email.check_address(value)  # ValueError → InvalidJobData naming `to`

    @field_validator("attachments")
    @classmethod
    def _stored(cls, value: list[str]) -> list[str]:
        from django.core.files.storage import default_storage

        for name in value:
            try:
                found = default_storage.exists(name)
            except Exception:  # SuspiciousFileOperation: a path outside the storage
                found = False
            if not found:
                raise ValueError(f"no file {name!r} in storage")
        return value


def _deliver(job: Job, message_pk: int) -> dict:
    # The running job's budget is in its options (the worker's Job leaves `attempts` unset).
    last = job.attempts_made + 1 >= int(job.opts.get("attempts") or 1)
    try:
        return delivery.deliver(message_pk, last_attempt=last)
    except delivery.MessageGone as exc:
        raise PermanentError(str(exc)) from exc
    except DeliveryError as exc:
        if exc.permanent:
            raise PermanentError(str(exc)) from exc
        if exc.retry_after_ms:  # the provider said when (an SMS provider's 429)
            raise RetryAfter(str(exc), exc.retry_after_ms) from exc
        raise  # the retry policy decides


@job_type("send-email", queue="email", schema=SendEmailParams, **RETRY)
def send_email(job: Job, to: str, subject: str, body: str, html: str | None = None,
               attachments: list[str] | None = None) -> dict:  # fmt: skip
    """Send one email (to one address), recorded as a Message."""
    message, _ = Message.objects.get_or_create(job_id=job.id, defaults={
        "channel": Message.EMAIL, "recipient": to, "subject": subject, "body": body,
        "html": html or "", "attachments": attachments or [],
    })  # fmt: skip
    return {"messageId": message.pk, **_deliver(job, message.pk)}


@job_type("deliver-email", queue="email", **RETRY)
def deliver_email(job: Job, message_id: int) -> dict:
    """Deliver a Message notify() wrote for the email channel."""
    return _deliver(job, message_id)


@job_type("deliver-inapp", queue="notifications", attempts=3,
          backoff={"type": "exponential", "delay": 5000, "factor": 5, "jitter": 0.2})  # fmt: skip
def deliver_inapp(job: Job, message_id: int) -> dict:
    """Put a Message notify() wrote for the inapp channel in its user's inbox."""
    return _deliver(job, message_id)
