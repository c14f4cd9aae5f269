"""`send-sms`, `send-whatsapp`, `deliver-sms`, `deliver-whatsapp` (queue `notifications`):
thin entry points over notifications/delivery.py, the path email takes.

As for email, two shapes and one delivery: `send-sms {to, body}` / `send-whatsapp {to,
body}` record their own Message row (found again by job id on a rerun) and deliver it;
`deliver-sms` / `deliver-whatsapp {messageId}` deliver a row notify() wrote. (No `from
__future__ import annotations`: the schema is built from the model's annotations.)
"""

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from notifications.channels import sms
from notifications.jobs.messages import _deliver
from notifications.models import Message
from tasks import Job, job_type

#: Provider 5xx, 408/429 and timeouts retry at 5 s, 20 s, 80 s, 320 s (±20 %), or no sooner
#: than a 429's Retry-After; a 400 or a bad number fails at once.
RETRY = {"attempts": 5, "backoff": {"type": "exponential", "delay": 5000, "factor": 4,
                                    "jitter": 0.2}}  # fmt: skip


class SendSmsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
    to: str = Field(max_length=32)
    body: str = Field(min_length=1, max_length=1600)

    @field_validator("to")
    @classmethod
    def _e164(cls, value: str) -> str:
        return sms.check_number(value)  # ValueError → InvalidJobData naming `to`


def _send(job: Job, channel: str, to: str, body: str) -> dict:
    message, _ = Message.objects.get_or_create(job_id=job.id, defaults={
        "channel": channel, "recipient": to, "body": body,
    })  # fmt: skip
    return {"messageId": message.pk, **_deliver(job, message.pk)}


@job_type("send-sms", queue="notifications", schema=SendSmsParams, **RETRY)
def send_sms(job: Job, to: str, body: str) -> dict:
    """Send one SMS to one E.164 number, recorded as a Message."""
    return _send(job, Message.SMS, to, body)


@job_type("send-whatsapp", queue="notifications", schema=SendSmsParams, **RETRY)
def send_whatsapp(job: Job, to: str, body: str) -> dict:
    """Send one WhatsApp message to one E.164 number, recorded as a Message."""
    return _send(job, Message.WHATSAPP, to, body)


@job_type("deliver-sms", queue="notifications", **RETRY)
def deliver_sms(job: Job, message_id: int) -> dict:
    """Deliver a Message notify() wrote for the sms channel."""
    return _deliver(job, message_id)


@job_type("deliver-whatsapp", queue="notifications", **RETRY)
def deliver_whatsapp(job: Job, message_id: int) -> dict:
    """Deliver a Message notify() wrote for the whatsapp channel."""
    return _deliver(job, message_id)
