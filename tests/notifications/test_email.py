"""Email end to end: real workers send to the test's SMTP server (conftest.py), which is the
proof of what was sent: headers, parts, retries, refusals."""

from __future__ import annotations

import uuid

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from notifications import notify
from notifications.models import Message
from tasks import InvalidJobData, JobFailed, enqueue, get_job

pytestmark = [pytest.mark.django_db(transaction=True)]


def address(local: str = "ada") -> str:
    return f"{local}-{uuid.uuid4().hex[:10]}@example.test"


def test_it_sends_a_templated_email_with_its_headers_and_parts(worker, smtp_server):
    to = address()
    (message,) = notify([to], "welcome", {"name": "Ada", "link": "https://x.test/a"})
    job = get_job("email", f"message-{message.pk}")
    assert job.wait_until_finished(timeout=30)["state"] == "sent"

    (received,) = smtp_server.wait_for(to)
    mail = received.message
    assert mail["Message-ID"] == f"<message-{message.pk}@jobyard.test>"
    assert mail["Subject"] == "Welcome to Jobyard, Ada"
    assert mail["From"] == "Jobyard <jobyard@jobyard.test>"
    assert mail["To"] == to
    assert "your account is ready: https://x.test/a" in mail.get_body(("plain",)).get_content()
    assert '<a href="https://x.test/a">' in mail.get_body(("html",)).get_content()

    message.refresh_from_db()
    assert (message.state, message.attempts, message.provider_id) == (
        "sent", 1, f"<message-{message.pk}@jobyard.test>")  # fmt: skip
    assert message.sent_at and message.template == "welcome"
    assert message.context == {"name": "Ada", "link": "https://x.test/a"}


def test_send_email_attaches_a_stored_file(worker, smtp_server):
    name = default_storage.save(f"catalog/reports/test-{uuid.uuid4().hex}.csv",
                                ContentFile(b"name,mag\nC/2023 A3,4.5\n"))  # fmt: skip
    to = address()
    job = enqueue("send-email", {"to": to, "subject": "Your report", "body": "Attached.",
                                 "html": "<p>Attached.</p>", "attachments": [name]})  # fmt: skip
    result = job.wait_until_finished(timeout=30)
    (received,) = smtp_server.wait_for(to)
    mail = received.message
    assert mail["Message-ID"] == f"<message-{result['messageId']}@jobyard.test>"
    assert mail.get_body(("plain",)).get_content().strip() == "Attached."
    assert mail.get_body(("html",)).get_content().strip() == "<p>Attached.</p>"
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_filename() == name.rsplit("/", 1)[-1]
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_content().replace("\r\n", "\n") == "name,mag\nC/2023 A3,4.5\n"
    stored = Message.objects.get(pk=result["messageId"])
    assert (stored.job_id, stored.state, stored.attachments) == (job.id, "sent", [name])


def test_a_451_is_retried_and_then_delivered(worker, smtp_server):
    to = address("tempfail")
    (message,) = notify([to], "welcome", {"name": "Bo"})
    job = get_job("email", f"message-{message.pk}")
    assert job.wait_until_finished(timeout=30)["state"] == "sent"
    assert (to, 451) in smtp_server.refused
    assert len(smtp_server.wait_for(to)) == 1
    message.refresh_from_db()
    assert (message.state, message.attempts) == ("sent", 2)
    assert job.refresh().attempts_made == 2


def test_a_550_fails_at_once(worker, smtp_server):
    to = address("reject")
    (message,) = notify([to], "welcome", {"name": "Cy"})
    job = get_job("email", f"message-{message.pk}")
    with pytest.raises(JobFailed, match="550"):
        job.wait_until_finished(timeout=30)
    assert job.refresh().attempts_made == 1
    message.refresh_from_db()
    assert (message.state, message.attempts) == ("failed", 1)
    assert "550" in message.last_error and smtp_server.to(to) == []


def test_a_delivered_message_is_not_sent_again(worker, smtp_server):
    to = address()
    (message,) = notify([to], "welcome", {"name": "Di"})
    get_job("email", f"message-{message.pk}").wait_until_finished(timeout=30)
    again = enqueue("deliver-email", {"message_id": message.pk}, job_id=f"again-{message.pk}")
    assert again.wait_until_finished(timeout=30)["skipped"] is True
    assert len(smtp_server.to(to)) == 1


@pytest.mark.parametrize("data, field", [
    ({"to": "not-an-address", "subject": "s", "body": "b"}, "to"),
    ({"to": "a@example.test", "subject": "", "body": "b"}, "subject"),
    ({"to": "a@example.test", "subject": "s", "body": "b", "attachments": ["../etc/passwd"]},
     "attachments"),
])  # fmt: skip
def test_bad_send_email_data_is_refused_naming_the_field(data, field):
    with pytest.raises(InvalidJobData) as caught:
        enqueue("send-email", data)
    assert [e["field"] for e in caught.value.errors][0].startswith(field)
    assert Message.objects.count() == 0
