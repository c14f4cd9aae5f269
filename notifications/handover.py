"""Handing an email over to the SMTP server so that no crash makes it arrive twice.

An SMTP server takes a message when it reads the end of its data (`\\r\\n.\\r\\n`) and drops
one whose connection dies before that. So the body is written first, then the Message row
is marked `handed_over_at` (committed), then the end-of-data is written, then the reply is
read and the row marked `sent` (notifications/smtp.py calls the three steps; delivery.py
decides). A worker killed before the mark leaves a row the rerun sends again, safely: the
server dropped the first copy. A worker killed after the mark leaves a row the rerun counts
as sent without sending it: the server has it.

The mark's statement is sent to PostgreSQL and the end-of-data written right after it,
without waiting for the database's answer in between (it is read once the end-of-data is
out). Waiting would open a window as long as a commit, in which a worker killed after the
server committed the mark and before the end-of-data left loses the message. What is left
is the time between two back-to-back socket writes (docs/notifications.md, "Once").
"""

from __future__ import annotations

import select
from collections.abc import Callable

from django.db import DatabaseError, connection
from psycopg import pq

from notifications.models import Message

#: Session advisory locks taken while an email is being sent, one key per Message row:
#: (this prefix << 40) + pk. PostgreSQL releases them when the worker's connection closes,
#: so a killed worker never leaves one behind. (tasks/recorder.py's key is far below it.)
LOCK_PREFIX = 0x4A594D  # "JYM"


def lock_key(message_pk: int) -> int:
    return (LOCK_PREFIX << 40) + message_pk


class MessageLock:
    """`with MessageLock(pk) as held:` held is False when another run is sending it now."""

    def __init__(self, message_pk: int) -> None:
        self.key = lock_key(message_pk)
        self.held = False

    def __enter__(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
            self.held = bool(cursor.fetchone()[0])
        return self.held

    def __exit__(self, *exc_info: object) -> None:
        if self.held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [self.key])


def send_statement(sql: str) -> Callable[[], int]:
    """Send one statement on Django's connection and return without its answer; the
    function returned waits for the answer and returns the rows it changed (raising
    DatabaseError if it failed). It must be called before the connection is used again.

    Outside a transaction the statement commits on its own (autocommit). Inside one (a test
    in a transaction, a caller's atomic block) nothing can commit early: the statement runs
    there, waited for at once.
    """
    connection.ensure_connection()
    raw = connection.connection
    pgconn = getattr(raw, "pgconn", None)
    idle = pgconn is not None and pgconn.transaction_status == pq.TransactionStatus.IDLE
    if connection.in_atomic_block or not idle:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.rowcount
        return lambda: rows
    # psycopg documents Connection.pgconn for what it does not wrap; its connections are
    # non-blocking, so flush until every byte is with the kernel.
    pgconn.send_query(sql.encode())
    while pgconn.flush():
        select.select([], [pgconn.socket], [])

    def answer() -> int:
        rows, error = 0, ""
        while True:
            pgconn.consume_input()
            while pgconn.is_busy():
                select.select([pgconn.socket], [], [])
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                break
            if result.error_message:
                error = result.error_message.decode(errors="replace").strip()
            else:
                rows += int(result.command_tuples or 0)
        if error:
            raise DatabaseError(error)
        return rows

    return answer


class Handover:
    """One email's hand-over, driven by the SMTP connection (notifications/smtp.py):
    `before_end_of_data()`, `end_of_data_written()`, `replied(code)`. `stage` says how far
    it got, which the delivery reads when the send raised."""

    PENDING, MARKING, ENDED, REPLIED = "pending", "marking", "ended", "replied"

    def __init__(self, message_pk: int) -> None:
        self.message_pk = int(message_pk)
        self.stage = self.PENDING
        self.reply_code: int | None = None
        #: Why the mark is not known to be committed ("" when it is).
        self.mark_error = ""
        self._answer: Callable[[], int] | None = None

    def before_end_of_data(self) -> None:
        """The body is written: mark the row (sent, not waited for). Raising here stops the
        send before the end-of-data, so the server drops the message."""
        table = Message._meta.db_table
        self._answer = send_statement(
            f"UPDATE {table} SET handed_over_at = now(), updated_at = now()"
            f" WHERE id = {self.message_pk} AND state = '{Message.QUEUED}'"
            " AND handed_over_at IS NULL"
        )  # fmt: skip
        self.stage = self.MARKING

    def end_of_data_written(self) -> None:
        """The end-of-data is out: read the mark's answer (never raises: the mail is gone)."""
        self.stage = self.ENDED
        try:
            rows = self._answer() if self._answer else 0
        except DatabaseError as exc:
            self.mark_error = str(exc) or type(exc).__name__
        else:
            if rows != 1:
                self.mark_error = "the row was not queued, or already handed over"

    def replied(self, code: int) -> None:
        self.stage, self.reply_code = self.REPLIED, code
