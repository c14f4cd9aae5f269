"""Django's SMTP email backend, with the end of each message's data written in two steps
so that a hand-over hook runs between them (notifications/handover.py).

An EmailMessage with an `end_of_data_hook` (an object with `before_end_of_data()`,
`end_of_data_written()` and `replied(code)`) is sent as smtplib sends it, except for DATA:
the body goes first, then `before_end_of_data()`, then the terminating `.` line, then
`end_of_data_written()`, then the reply is read. If the hook raises, the connection is
closed without the terminator: the server drops the message. Messages without a hook are
sent exactly as Django's backend sends them. settings.EMAIL_BACKEND names this backend
wherever EMAIL_URL names an SMTP server (project/settings.py).
"""

from __future__ import annotations

import re
import smtplib
from typing import Protocol

from django.core.mail.backends import smtp

_PERIOD_AT_LINE_START = re.compile(rb"(?m)^\.")
_BARE_EOL = re.compile(r"(?:\r\n|\n|\r(?!\n))")


class EndOfDataHook(Protocol):
    def before_end_of_data(self) -> None: ...

    def end_of_data_written(self) -> None: ...

    def replied(self, code: int) -> None: ...


class _HandsOver:
    """smtplib.SMTP's DATA with the hook's steps around the terminator."""

    end_of_data_hook: EndOfDataHook | None = None

    def data(self, msg: bytes | str) -> tuple[int, bytes]:
        hook = self.end_of_data_hook
        if hook is None:
            return super().data(msg)
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        if isinstance(msg, str):  # as smtplib: bare line ends become CRLF, then ASCII
            msg = _BARE_EOL.sub("\r\n", msg).encode("ascii")
        body = _PERIOD_AT_LINE_START.sub(b"..", msg)  # RFC 5321 4.5.2, as smtplib
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.send(body)
        try:
            hook.before_end_of_data()
        except BaseException:
            # No terminator: closing here makes the server drop the message. (QUIT now
            # would be read as more body and wait for a reply that never comes.)
            self.close()
            raise
        self.send(b".\r\n")
        hook.end_of_data_written()
        code, reply = self.getreply()
        hook.replied(code)
        return code, reply


class SMTP(_HandsOver, smtplib.SMTP):
    pass


class SMTPSSL(_HandsOver, smtplib.SMTP_SSL):
    pass


class EmailBackend(smtp.EmailBackend):
    """Django's SMTP backend (STARTTLS, implicit TLS, login, timeouts all its own), passing
    each message's `end_of_data_hook` to the connection for its DATA."""

    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        return SMTPSSL if self.use_ssl else SMTP

    def _send(self, email_message) -> bool:
        self.connection.end_of_data_hook = getattr(email_message, "end_of_data_hook", None)
        try:
            return super()._send(email_message)
        finally:
            self.connection.end_of_data_hook = None
