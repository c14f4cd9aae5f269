"""The notifications sweep (notifications/sweep.py): rows whose job was lost get it back,
once; old per-domain counters go. And the dead-job digests' admin page."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

import tasks
from notifications import sweep
from notifications.models import DeadJobDigest, Delivery, DomainSendCount, Endpoint, Message
from tasks.scheduling.defaults import default_schedules
from tasks.testing import run_job
from tests.conftest import wait_for


def address() -> str:
    return f"lost-{uuid.uuid4().hex[:10]}@example.test"


def lost_email(to: str, minutes_ago: float = 11, **fields) -> Message:
    """A row as notify() writes it, whose enqueue never happened (the process died after
    the commit), written `minutes_ago`."""
    message = Message.objects.create(channel=Message.EMAIL, recipient=to, subject="Lost",
                                     body="Found again.", **fields)  # fmt: skip
    message.job_id = f"message-{message.pk}"
    Message.objects.filter(pk=message.pk).update(
        job_id=message.job_id, created_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return message


@pytest.mark.django_db(transaction=True)
def test_it_requeues_only_queued_rows_past_the_grace_whose_job_is_gone():
    lost = lost_email(address())
    young = lost_email(address(), minutes_ago=2)  # its enqueue may still be on its way
    sent = lost_email(address(), state=Message.SENT)
    with_job = lost_email(address())
    tasks.enqueue(
        "deliver-email", {"message_id": with_job.pk}, job_id=with_job.job_id, delay=60_000
    )
    direct = lost_email(address())  # written by a send-email job that still exists
    Message.objects.filter(pk=direct.pk).update(job_id="send-email-direct-1")
    tasks.enqueue("send-email", {"to": direct.recipient, "subject": "s", "body": "b"},
                  job_id="send-email-direct-1", delay=60_000)  # fmt: skip

    assert sweep.requeue_messages(timedelta(minutes=10)) == [lost.pk]
    job = tasks.get_job("email", f"message-{lost.pk}")
    assert (job.name, job.data, job.state) == ("deliver-email", {"message_id": lost.pk}, "waiting")
    assert tasks.get_job("email", f"message-{young.pk}") is None
    assert tasks.get_job("email", f"message-{sent.pk}") is None
    assert tasks.get_job("email", f"message-{direct.pk}") is None
    assert sweep.requeue_messages(timedelta(minutes=10)) == []  # its job exists now: once


@pytest.mark.django_db(transaction=True)
def test_a_lost_message_due_later_is_requeued_for_its_time():
    when = timezone.now() + timedelta(hours=2)
    message = lost_email(address(), send_after=when)
    assert sweep.requeue_messages(timedelta(minutes=10)) == [message.pk]
    job = tasks.get_job("email", f"message-{message.pk}")
    assert job.state == "delayed"
    assert abs(job.delay_until / 1000 - when.timestamp()) < 60


@pytest.mark.django_db(transaction=True)
def test_it_requeues_a_webhook_delivery_whose_job_is_gone():
    endpoint = Endpoint.objects.create(url="https://hooks.example.test/x", secret="s" * 32,
                                       event_types=["ping"])  # fmt: skip
    lost, kept, done = (Delivery.objects.create(endpoint=endpoint, event_type="ping",
                                                event_id=f"e{n}", payload={}, status=status)
                        for n, status in enumerate(["retrying", "pending", "delivered"]))  # fmt: skip
    Delivery.objects.update(created_at=timezone.now() - timedelta(minutes=30))
    tasks.enqueue("deliver-webhook", {"delivery_id": kept.pk}, job_id=kept.job_id, delay=60_000)
    assert sweep.requeue_deliveries(timedelta(minutes=10)) == [lost.pk]
    assert tasks.get_job("webhooks", f"delivery-{lost.pk}").data == {"delivery_id": lost.pk}
    assert tasks.get_job("webhooks", f"delivery-{done.pk}") is None


@pytest.mark.django_db(transaction=True)
def test_the_job_prunes_old_domain_counts_and_is_scheduled():
    minute = timezone.now().replace(second=0, microsecond=0)
    DomainSendCount.objects.create(domain="old.test", minute=minute - timedelta(hours=2), count=9)
    DomainSendCount.objects.create(domain="now.test", minute=minute, count=1)
    job = run_job("sweep-notifications")
    assert job.state == "completed" and job.returnvalue["domainCountsPruned"] == 1
    assert list(DomainSendCount.objects.values_list("domain", flat=True)) == ["now.test"]
    (schedule,) = [s for s in default_schedules() if s.key == "notifications-sweep"]
    assert (schedule.job_type, schedule.cron) == ("sweep-notifications", "*/5 * * * *")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_lost_email_is_found_by_the_scheduled_job_and_sent_once(start_worker, smtp_server):
    to = address()
    message = lost_email(to)
    start_worker(["cleanup", "email"], concurrency=1)
    job = tasks.enqueue("sweep-notifications", {})  # as the schedule fires it
    assert message.pk in job.wait_until_finished(timeout=60)["requeuedMessages"]
    wait_for(lambda: Message.objects.get(pk=message.pk).state == "sent", timeout=60)
    (received,) = smtp_server.wait_for(to)
    assert received.message_id == f"<message-{message.pk}@jobyard.test>"
    assert tasks.enqueue("sweep-notifications", {}).wait_until_finished(timeout=60)[
        "requeuedMessages"] == []  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_dead_job_digests_have_a_read_only_admin_page(admin_client):
    for name, ids in (("send-email", ["j-77", "j-78"]), ("make-report", ["r-1"])):
        DeadJobDigest.objects.create(queue="email", job_name=name, count=3, job_ids=ids,
                                     window_start=timezone.now(),
                                     failed_reason="SMTP 550: no such mailbox")  # fmt: skip
    page = admin_client.get("/admin/notifications/deadjobdigest/").content
    assert b"send-email" in page and b"make-report" in page
    page = admin_client.get("/admin/notifications/deadjobdigest/?q=j-77").content  # a job id
    assert b"send-email" in page and b"make-report" not in page
    digest = DeadJobDigest.objects.get(job_name="send-email")
    detail = admin_client.get(f"/admin/notifications/deadjobdigest/{digest.pk}/change/")
    assert detail.status_code == 200 and b"SMTP 550: no such mailbox" in detail.content
    assert b'name="count"' not in detail.content  # read-only
    assert admin_client.get("/admin/notifications/deadjobdigest/add/").status_code == 403
