"""Email through Django's mail API, with the backend settings.EMAIL_URL names (console
locally, SMTP with TLS in production: docs/notifications.md)."""

from __future__ import annotations

import smtplib
from email.utils import parseaddr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email

from notifications.channels import DeliveryError

#: The job that delivers a notify() email (notifications/jobs/messages.py).
JOB_TYPE = "deliver-email"


def check_address(value: str) -> str:
    """The address, or ValueError saying why not (Django's EmailValidator: no DNS lookup)."""
    try:
        validate_email(value)
    except ValidationError:
        raise ValueError(f"{value!r} is not a valid email address") from None
    return value


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def recipient_for(obj) -> str:
    address = obj if isinstance(obj, str) else getattr(obj, "email", "")
    if not address:
        raise ValueError(f"recipient {obj!r} has no email address")
    return check_address(address)


def message_id(pk: int) -> str:
    """Keyed by the row, so that a send repeated after a crash carries the same Message-ID
    (a duplicate the receiving side can see and drop), never a second distinct mail."""
    domain = domain_of(parseaddr(settings.DEFAULT_FROM_EMAIL)[1]) or "localhost"
    return f"<message-{pk}@{domain}>"


def build(message) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=message.subject, body=message.body, to=[message.recipient],
        headers={"Message-ID": message_id(message.pk)},
    )  # fmt: skip
    if message.html:
        email.attach_alternative(message.html, "text/html")
    for name in message.attachments:
        try:
            with default_storage.open(name, "rb") as handle:
                content = handle.read()
        except (FileNotFoundError, OSError, ValueError) as exc:
            raise DeliveryError(f"attachments: no file {name!r} in storage ({exc})", True) from exc
        email.attach(name.rsplit("/", 1)[-1], content)  # mimetype guessed from the name
    return email


def send(message, handover=None) -> str:
    """Send it; the provider id is the Message-ID (an API backend's own id when it gives one:
    anymail sets `anymail_status.message_id`). `handover` (notifications/handover.py) is
    driven by the SMTP backend around the end of the data; other backends ignore it."""
    email = build(message)
    email.end_of_data_hook = handover
    try:
        email.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise DeliveryError(f"recipient refused: {exc.recipients}", min(codes) >= 500) from exc
    except smtplib.SMTPResponseException as exc:  # 4xx: try again later; 5xx: never
        detail = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)  # fmt: skip
        raise DeliveryError(f"SMTP {exc.smtp_code}: {detail}", exc.smtp_code >= 500) from exc
    except (smtplib.SMTPException, OSError) as exc:  # disconnected, refused, timed out
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    status = getattr(email, "anymail_status", None)
    return getattr(status, "message_id", None) or message_id(message.pk)
