"""Email's hand-over (notifications/handover.py, smtp.py): a sender killed at each step of
an SMTP send, and the rerun. The sender is a real process running the delivery
(notifications.delivery.deliver), SIGKILLed while the test's SMTP server holds it at a
chosen step; the rerun runs here. The server's log is the proof: each message once."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import DatabaseError

from notifications.channels import DeliveryError
from notifications.delivery import deliver
from notifications.handover import Handover
from notifications.models import Message
from tasks.testing import child_environment

pytestmark = [pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def smtp_backend(settings):
    # pytest-django puts the locmem backend in this process; the test's SMTP server it is.
    settings.EMAIL_BACKEND = "notifications.smtp.EmailBackend"


def address(local: str) -> str:
    return f"{local}-{uuid.uuid4().hex[:10]}@example.test"


def queued_email(to: str) -> Message:
    # A row and no job: no worker of the session takes it, only the test delivers it.
    return Message.objects.create(channel=Message.EMAIL, recipient=to, subject="Hand-over",
                                  body="One copy, whatever happens.")  # fmt: skip


def start_sender(message: Message) -> subprocess.Popen:
    code = f"import django; django.setup(); from notifications.delivery import deliver; deliver({message.pk})"
    return subprocess.Popen([sys.executable, "-c", code], cwd=BASE_DIR, env=child_environment(),
                            start_new_session=True)  # fmt: skip


def kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=30)


def rerun(message: Message, timeout: float = 30) -> dict:
    """deliver() as the job's next attempt runs it; the killed sender's database session
    (and its advisory lock) may take a moment to end."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return deliver(message.pk)
        except DeliveryError as exc:
            if "another run" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.slow  # a Django process started and killed
def test_it_never_resends_an_email_the_server_took_before_the_sender_died(smtp_server):
    to = address("handover")
    message = queued_email(to)
    release = smtp_server.hold(to, "reply")  # the server has the mail; the sender awaits 250
    sender = start_sender(message)
    smtp_server.wait_holding(to, "reply")
    kill(sender)
    release.set()
    message.refresh_from_db()
    assert message.state == "queued" and message.handed_over_at is not None

    result = rerun(message)
    mid = f"<message-{message.pk}@jobyard.test>"
    assert result == {"state": "sent", "providerId": mid, "skipped": True}
    assert [r.message_id for r in smtp_server.to(to)] == [mid]  # once: not sent again
    message.refresh_from_db()
    assert (message.state, message.attempts, message.sent_at) == (
        "sent", 1, message.handed_over_at)  # fmt: skip
    assert "counted as sent, not sent again" in message.last_error


@pytest.mark.slow  # a Django process started and killed
def test_it_resends_an_email_whose_sender_died_before_the_end_of_data(smtp_server):
    to = address("handover")
    message = queued_email(to)
    release = smtp_server.hold(to, "rcpt")
    sender = start_sender(message)
    smtp_server.wait_holding(to, "rcpt")
    kill(sender)
    release.set()
    message.refresh_from_db()
    assert message.state == "queued" and message.handed_over_at is None

    result = rerun(message)
    assert result["state"] == "sent" and not result["skipped"]
    assert len(smtp_server.wait_for(to)) == 1
    message.refresh_from_db()
    assert (message.state, message.attempts, message.last_error) == ("sent", 2, "")


def test_a_mark_that_fails_stops_the_send_before_the_end_of_data(smtp_server, monkeypatch):
    to = address("handover")
    message = queued_email(to)

    def database_down(self):
        raise DatabaseError("the database went away")

    with monkeypatch.context() as patch:
        patch.setattr(Handover, "before_end_of_data", database_down)
        with pytest.raises(DatabaseError):
            deliver(message.pk)  # returns at once: no QUIT sent into the open data
    message.refresh_from_db()
    assert (message.state, message.handed_over_at) == ("queued", None)

    assert deliver(message.pk)["state"] == "sent"
    (received,) = smtp_server.wait_for(to)  # the first copy never ended: the server dropped it
    assert received.message.get_content().strip() == "One copy, whatever happens."


def test_a_refusal_at_the_end_of_data_clears_the_mark_for_the_retry(smtp_server):
    to = address("tempdata")  # 451 at the end of the data, the first time
    message = queued_email(to)
    with pytest.raises(DeliveryError) as refused:
        deliver(message.pk)
    assert not refused.value.permanent and "SMTP 451" in str(refused.value)
    message.refresh_from_db()
    assert (message.state, message.handed_over_at) == ("queued", None)

    assert deliver(message.pk)["skipped"] is False
    assert len(smtp_server.wait_for(to)) == 1
    message.refresh_from_db()
    assert message.state == "sent" and message.handed_over_at is not None
