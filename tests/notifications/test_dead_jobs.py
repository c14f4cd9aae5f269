"""Operators' email about dead jobs: one digest per queue, job type and window, however
many die (notifications/dead_jobs.py); end to end through the event loop, a real worker
and the test's SMTP server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

import tasks
from notifications import dead_jobs
from notifications.models import DeadJobDigest, Message
from tests.conftest import wait_for


def address() -> str:
    return f"ops-{uuid.uuid4().hex[:10]}@example.test"


@pytest.mark.django_db
def test_a_burst_of_a_thousand_dead_jobs_is_one_digest_per_type_and_window(settings):
    settings.JOB_DEAD_EMAILS = [address(), address()]
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    for n in range(1000):
        dead_jobs.record("email", "send-email", f"j{n}", "SMTPError: 550", start + timedelta(
            milliseconds=50 * n))  # fmt: skip
    dead_jobs.record("reports", "make-report", "r1", "", start)
    assert dead_jobs.send_due(start + timedelta(seconds=59)) == 0  # its window is open
    assert dead_jobs.send_due(start + timedelta(seconds=120)) == 2
    assert dead_jobs.send_due(start + timedelta(seconds=180)) == 0  # sent once
    digest = DeadJobDigest.objects.get(job_name="send-email")
    assert digest.count == 1000 and len(digest.job_ids) == DeadJobDigest.MAX_JOB_IDS
    messages = Message.objects.filter(template="job-dead")
    assert messages.count() == 4  # two digests, two addresses each
    mail = messages.filter(subject__contains="send-email").first()
    assert mail.subject == "[Jobyard] 1000 dead send-email jobs on email"
    assert "SMTPError: 550" in mail.body and "j19" in mail.body and "j20" not in mail.body


@pytest.mark.django_db
def test_it_is_off_without_addresses(settings):
    settings.JOB_DEAD_EMAILS = []
    DeadJobDigest.objects.create(queue="email", job_name="x",
                                 window_start=datetime(2000, 1, 1, tzinfo=UTC), count=1)  # fmt: skip
    assert dead_jobs.send_due() == 0 and not Message.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_dead_jobs_reach_the_operators_as_one_email(settings, worker, smtp_server):
    ops = address()
    settings.JOB_DEAD_EMAILS = [ops]
    settings.JOB_DEAD_DIGEST_SECONDS = 2
    call_command("webhook_events", "--once", "--block-ms", "50")  # the group starts here
    jobs = [tasks.enqueue("t-fail", {"message": "boom"}) for _ in range(5)]
    for job in jobs:
        with pytest.raises(tasks.JobFailed):
            job.wait_until_finished(timeout=30)

    def sent() -> bool:
        call_command("webhook_events", "--once", "--block-ms", "50")
        return bool(smtp_server.to(ops))

    wait_for(sent, 30, message="the dead-job digest")
    (received,) = smtp_server.wait_for(ops)
    assert "dead t-fail jobs on default" in received.message["Subject"]
    text = received.message.get_body(("plain",)).get_content()
    assert "PermanentError: boom" in text and all(job.id in text for job in jobs)
    call_command("webhook_events", "--once", "--block-ms", "50")
    assert sum(DeadJobDigest.objects.values_list("count", flat=True)) == 5
