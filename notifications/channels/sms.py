"""SMS through a provider (channels/sms_providers.py: the console one by default, or the
HTTP one, Twilio's shape). Numbers are E.164 (`+4930123456`), checked with `phonenumbers`:
a bad one is refused by notify() and send-sms naming the field, and never retried."""

from __future__ import annotations

import phonenumbers

from notifications.channels import DeliveryError

#: The job that delivers a notify() SMS (notifications/jobs/sms.py).
JOB_TYPE = "deliver-sms"
#: What the provider is told the message is (the HTTP provider prefixes WhatsApp numbers).
KIND = "sms"


def check_number(value: object) -> str:
    """The number in E.164 form, or ValueError saying why not. It must be given in the
    international form (a leading `+` and the country code): there is no default region,
    so `030 123456` is refused rather than guessed."""
    if not isinstance(value, str) or not value.strip().startswith("+"):
        raise ValueError(f"{value!r} is not an E.164 phone number (+ and the country code)")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{value!r} is not an E.164 phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def recipient_for(obj) -> str:
    """A number, or a User with a `phone_number` (or `phone`) attribute (a custom user
    model's field, or a property reading a profile)."""
    number = obj if isinstance(obj, str) else (
        getattr(obj, "phone_number", "") or getattr(obj, "phone", "")
    )  # fmt: skip
    if not number:
        raise ValueError(f"recipient {obj!r} has no phone number")
    return check_number(number)


def send(message, kind: str = KIND) -> str:
    """Send it through the configured provider; the provider's id for the message."""
    from notifications.channels import sms_providers

    try:
        to = check_number(message.recipient)  # a row written some other way: still never sent
    except ValueError as exc:
        raise DeliveryError(f"recipient: {exc}", permanent=True) from None
    return sms_providers.provider().send(kind, to, message.body, key=f"message-{message.pk}")
