"""WhatsApp: SMS's numbers and provider, sent from WHATSAPP_FROM (the HTTP provider writes
both numbers as `whatsapp:+…`, as Twilio's Messages API takes them)."""

from __future__ import annotations

from notifications.channels import sms

#: The job that delivers a notify() WhatsApp message (notifications/jobs/sms.py).
JOB_TYPE = "deliver-whatsapp"
KIND = "whatsapp"

recipient_for = sms.recipient_for


def send(message) -> str:
    return sms.send(message, kind=KIND)
