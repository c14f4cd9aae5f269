"""A real SMTP server (aiosmtpd) on 127.0.0.1, on the port tests/settings.py put in
EMAIL_URL for this process and every worker it starts.

Recipients steer it, so that tests need no shared state: `reject-...@` is refused with 550
at RCPT, `tempfail-...@` is answered 451 the first time that address is seen, then accepted;
`tempdata-...@` is answered 451 at the end of the data the first time (nothing recorded).
`hold(address, at)` makes the server stop for that address until the event it returns is
set: at "rcpt" before answering RCPT, at "reply" after recording the message and before
answering its end of data; `holding` names the (address, at) reached.
"""

from __future__ import annotations

import asyncio
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
        self.holds: dict[tuple[str, str], threading.Event] = {}
        self.holding: set[tuple[str, str]] = set()
        self.lock = threading.Lock()

    def hold(self, address: str, at: str) -> threading.Event:
        assert at in ("rcpt", "reply"), at
        release = self.holds[(address, at)] = threading.Event()
        return release

    async def _held(self, address: str, at: str) -> None:
        release = self.holds.get((address, at))
        if release is None:
            return
        with self.lock:
            self.holding.add((address, at))
        while not release.is_set():
            await asyncio.sleep(0.02)

    def wait_holding(self, address: str, at: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while (address, at) not in self.holding:
            assert time.monotonic() < deadline, f"the server never held {address} at {at}"
            time.sleep(0.02)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        await self._held(address, "rcpt")
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
            first = [a for a in envelope.rcpt_tos if a.split("@")[0].startswith("tempdata")
                     and a not in self.seen_tempfail]  # fmt: skip
            if first:
                self.seen_tempfail.update(first)
                return "451 4.3.0 queue full, try again later"
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        for address in envelope.rcpt_tos:
            await self._held(address, "reply")
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
