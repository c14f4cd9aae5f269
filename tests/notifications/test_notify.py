"""notify(): rows, jobs after commit, and bad input refused before anything is written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import transaction
from django.utils import timezone

from notifications import notify
from notifications.models import InboxItem, Message
from notifications.notify import UnknownTemplate
from tasks import Queue, get_job
from tasks.testing import run_enqueued

pytestmark = [pytest.mark.django_db(transaction=True)]


def queued() -> int:
    """Jobs sent to the delivery queues in any state: a worker of another test (the session
    worker consumes `email`) may already have run them."""
    return sum(sum(Queue(q).counts().values()) for q in ("email", "notifications"))


def test_it_writes_a_row_per_recipient_and_channel_and_a_job_each():
    ada = User.objects.create(username="ada", email="ada@example.test")
    rows = notify([ada, "bo@example.test"], "welcome", {"name": "you"}, channels=["email"])
    assert [(m.channel, m.recipient, m.state) for m in rows] == [
        ("email", "ada@example.test", "queued"),
        ("email", "bo@example.test", "queued"),
    ]
    assert rows[0].user == ada and rows[1].user is None
    for row in rows:
        assert get_job("email", f"message-{row.pk}").data == {"message_id": row.pk}


def test_jobs_are_sent_only_when_the_transaction_commits():
    with transaction.atomic():
        (row,) = notify(["a@example.test"], "welcome", {"name": "A"})
        assert get_job("email", f"message-{row.pk}") is None
    assert get_job("email", f"message-{row.pk}") is not None
    with pytest.raises(RuntimeError), transaction.atomic():
        notify(["b@example.test"], "welcome", {"name": "B"})
        raise RuntimeError("rolled back")
    assert Message.objects.count() == 1 and queued() == 1


def test_when_delays_the_job():
    (row,) = notify(["a@example.test"], "welcome", {}, when=timezone.now() + timedelta(hours=2))
    job = get_job("email", f"message-{row.pk}")
    assert job.state == "delayed" and job.delay_until > (timezone.now().timestamp() + 7000) * 1000


def test_inapp_writes_one_inbox_item_however_often_it_runs(settings):
    ada = User.objects.create(username="ada")
    (row,) = notify([ada], "welcome", {"name": "Ada", "link": "/dash"}, channels=["inapp"])
    job = get_job("notifications", f"message-{row.pk}")
    assert run_enqueued(job).returnvalue["state"] == "sent"
    from notifications.delivery import deliver

    assert deliver(row.pk)["skipped"] is True
    (item,) = InboxItem.objects.filter(user=ada)
    assert (item.title, item.body.strip(), item.link) == ("Welcome, Ada", "Your account is ready.",
                                                          "/dash")  # fmt: skip


def test_the_email_is_composed_from_the_templates(settings):
    from notifications.delivery import deliver

    # Delivered here (the locmem backend) before the commit sends its job: a worker that
    # takes the job afterwards finds the row sent and skips it.
    with transaction.atomic():
        (row,) = notify(["a@example.test"], "welcome", {"name": "Ed"})
        deliver(row.pk)
    (sent,) = mail.outbox
    assert sent.subject == "Welcome to Jobyard, Ed" and sent.to == ["a@example.test"]
    assert sent.extra_headers["Message-ID"] == f"<message-{row.pk}@jobyard.test>"
    assert sent.alternatives[0][1] == "text/html"


@pytest.mark.parametrize("call, match", [
    (lambda: notify(["a@example.test"], "no-such-template", {}), "'no-such-template'"),
    (lambda: notify(["a@example.test"], "welcome", {}, channels=["pigeon"]), "channels: .*'pigeon'"),
    (lambda: notify(["a@example.test", "nope"], "welcome", {}), "recipients.1: 'nope'"),
    (lambda: notify(["a@example.test"], "welcome", {}, channels=["inapp"]), "recipients.0:"),
    (lambda: notify(["a@example.test"], "welcome", {"at": object()}), "context:"),
    (lambda: notify([], "welcome", {}), "recipients:"),
])  # fmt: skip
def test_bad_input_raises_naming_it_and_queues_nothing(call, match):
    with pytest.raises(ValueError, match=match):
        call()
    assert Message.objects.count() == 0 and queued() == 0


def test_an_unknown_template_is_its_own_error():
    with pytest.raises(UnknownTemplate, match="unknown template 'nope'"):
        notify(["a@example.test"], "nope", {})
