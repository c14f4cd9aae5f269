"""`notify()`: the one entry point for sending a templated message over any channel."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils import timezone

import tasks
from notifications.channels import channel as get_channel


class UnknownTemplate(ValueError):
    """notify() was given a template with no files for a channel it asked for."""


def render(template: str, channel: str, context: dict) -> tuple[str, str, str]:
    """(subject, text body, html body) from notifications/<template>/<channel>_*.txt|html;
    the text body is required, the subject and the html body are not."""

    def part(suffix: str, required: bool) -> str:
        name = f"notifications/{template}/{channel}_{suffix}"
        try:
            return get_template(name).render(context)
        except TemplateDoesNotExist:
            if required:
                raise UnknownTemplate(
                    f"template: unknown template {template!r} for channel {channel!r}"
                    f" ({name} not found)"
                ) from None
            return ""

    subject = " ".join(part("subject.txt", False).split())  # one line, as a header must be
    return subject, part("body.txt", True), part("body.html", False)


def notify(recipients, template: str, context: dict | None = None,
           channels: Iterable[str] = ("email",), when: datetime | None = None) -> list:  # fmt: skip
    """Render `template` for each channel, write one Message per recipient and channel, and
    enqueue one delivery job each (`message-{pk}`), sent when the caller's transaction
    commits. `recipients`: Users and/or email addresses (the inapp channel takes Users
    only); `when`: deliver at that time (a delay), not before. Bad input raises ValueError
    naming the field (UnknownTemplate for a template), and nothing is written or queued."""
    context = dict(context or {})
    try:
        json.dumps(context)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"context: must be JSON (it is stored with the message): {exc}") from None
    if isinstance(recipients, (str, bytes)) or not isinstance(recipients, Iterable):
        recipients = [recipients]
    recipients = list(recipients)
    if not recipients:
        raise ValueError("recipients: at least one recipient")
    if isinstance(channels, str):
        channels = [channels]
    modules = {name: get_channel(name) for name in channels}
    rendered = {name: render(template, name, context) for name in modules}
    rows: list[tuple[str, object, str]] = []
    for name, module in modules.items():
        for index, recipient in enumerate(recipients):
            try:
                rows.append((name, recipient, module.recipient_for(recipient)))
            except ValueError as exc:
                raise ValueError(f"recipients.{index}: {exc}") from None
    options = {}
    if when is not None:
        if timezone.is_naive(when):
            raise ValueError("when: must be an aware datetime")
        options["delay"] = max(0, int((when - timezone.now()).total_seconds() * 1000))

    from django.contrib.auth import get_user_model

    from notifications.models import Message  # here: the package imports this module early

    user_model = get_user_model()
    messages = []
    with transaction.atomic():  # the jobs go out once the rows are committed, or never
        for name, recipient, address in rows:
            subject, body, html = rendered[name]
            message = Message.objects.create(
                channel=name, recipient=address, template=template, context=context,
                user=recipient if isinstance(recipient, user_model) else None,
                subject=subject, body=body, html=html, send_after=when,
            )  # fmt: skip
            message.job_id = f"message-{message.pk}"
            message.save(update_fields=["job_id"])
            tasks.enqueue(modules[name].JOB_TYPE, {"message_id": message.pk},
                          job_id=message.job_id, **options)  # fmt: skip
            messages.append(message)
    return messages
