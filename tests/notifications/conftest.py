"""A real SMTP server (aiosmtpd) on 127.0.0.1, on the port tests/settings.py put in
EMAIL_URL for this process and every worker it starts.

Recipients steer it, so that tests need no shared state: `reject-...@` is refused with 550
at RCPT, `tempfail-...@` is answered 451 the first time that address is seen, then accepted.
"""

from __future__ import annotations

import email
import email.policy
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]


class Recorder:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refused: list[tuple[str, int]] = []
        self.seen_tempfail: set[str] = set()
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        local = address.split("@")[0]
        with self.lock:
            if local.startswith("reject"):
                self.refused.append((address, 550))
                return "550 5.1.1 no such mailbox"
            if local.startswith("tempfail") and address not in self.seen_tempfail:
                self.seen_tempfail.add(address)
                self.refused.append((address, 451))
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.rcpt_tos]

    def wait_for(self, address: str, count: int = 1, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(self.to(address))} of {count} emails to {address} arrived")


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Recorder]:
    from aiosmtpd.controller import Controller

    recorder = Recorder()
    port = int(os.environ["JOBYARD_TEST_SMTP_PORT"])
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    yield recorder
    controller.stop()
