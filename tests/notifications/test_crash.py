"""A worker SIGKILLed in the middle of a batch of 500 emails: every one is delivered, and
none as a second distinct mail. The SMTP server's log is the proof, counted by Message-ID."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest

from notifications import notify
from notifications.models import Message

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BATCH = 500
CONCURRENCY = 4


def test_a_killed_worker_loses_no_email_and_sends_none_twice(start_worker, smtp_server):
    tag = uuid.uuid4().hex[:8]
    addresses = [f"crash-{tag}-{n}@example.test" for n in range(BATCH)]
    ours = set(addresses)

    def received() -> list:
        with smtp_server.lock:
            return [r for r in smtp_server.received if ours & set(r.rcpt_tos)]

    first = start_worker(["email"], concurrency=CONCURRENCY)
    rows = notify(addresses, "welcome", {"name": "crash"})
    expected = {f"<message-{row.pk}@jobyard.test>" for row in rows}
    deadline = time.monotonic() + 60
    while len(received()) < BATCH // 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.kill()  # mid-batch: jobs active, some mid-send
    at_kill = len(received())
    assert 0 < at_kill < BATCH, "the kill did not land mid-batch"

    start_worker(["email"], concurrency=CONCURRENCY)  # finds the stalled ones, runs the rest
    deadline = time.monotonic() + 180
    while Message.objects.filter(pk__in=[r.pk for r in rows], state="queued").exists():
        assert time.monotonic() < deadline, "messages still queued after 180 s"
        time.sleep(0.2)

    mails = received()
    by_id = Counter(r.message_id for r in mails)
    assert set(by_id) == expected  # every message delivered, and nothing else
    assert Message.objects.filter(pk__in=[r.pk for r in rows], state="sent").count() == BATCH
    # A kill between the SMTP server's 250 and the row's commit can resend that message: the
    # same Message-ID (one per row), so a duplicate the receiving side drops, never a second
    # distinct mail; at most one per job that was running when the worker died.
    repeated = {mid: n for mid, n in by_id.items() if n > 1}
    assert len(repeated) <= CONCURRENCY and all(n == 2 for n in repeated.values()), repeated
    print(f"killed after {at_kill} of {BATCH}; resent with the same Message-ID: {repeated}")
