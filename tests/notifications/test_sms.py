"""SMS and WhatsApp (issue #13): a fake provider on 127.0.0.1 answering per number, real
workers with the HTTP provider, each answer's fate, and numbers refused before anything is
written or queued."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

import tasks
from notifications import notify
from notifications.channels import DeliveryError, sms, sms_providers
from notifications.models import Message
from tasks.testing import WorkerProcess, run_job
from tests.conftest import wait_for

BASE_DIR = Path(__file__).resolve().parents[2]
SID, TOKEN, FROM, WA_FROM = "AC0123456789", "s3cret-token", "+15005550006", "+14155552671"

#: What the provider answers each number, in turn (the last answer repeats).
SCENARIOS = {
    "+12025550101": [(201, {})],
    "+12025550102": [(429, {"Retry-After": "1"}), (201, {})],
    "+12025550103": [(500, {}), (201, {})],
    "+12025550104": [(400, {})],
    "+12025550105": [(201, {})],  # whatsapp
    "+12025550106": [(201, {})],  # notify()
}


class Provider:
    """A Twilio-shaped Messages API on 127.0.0.1: records each request, answers per `To`."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                number = form.get("To", "").removeprefix("whatsapp:")
                with provider.lock:
                    n = len([r for r in provider.requests if r["number"] == number])
                    provider.requests.append({
                        "number": number, "form": form, "at": time.monotonic(),
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    })  # fmt: skip
                answers = SCENARIOS.get(number, [(201, {})])
                status, headers = answers[min(n, len(answers) - 1)]
                payload = (b'{"sid": "SM%d-%d"}' % (n, len(provider.requests))
                           if status == 201 else b'{"message": "no"}')  # fmt: skip
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/2010-04-01/Accounts/{SID}/Messages.json"

    def to(self, number: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["number"] == number]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    server = Provider()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sms_worker(provider, django_db_setup) -> Iterator[WorkerProcess]:
    """A real worker on `notifications` with the HTTP provider pointed at the fake one."""
    proc = WorkerProcess(["notifications"], concurrency=2, env={
        "SMS_PROVIDER": "http", "SMS_PROVIDER_URL": provider.url, "SMS_ACCOUNT_SID": SID,
        "SMS_AUTH_TOKEN": TOKEN, "SMS_FROM": FROM, "WHATSAPP_FROM": WA_FROM,
    }, cwd=BASE_DIR)  # fmt: skip
    proc.start()
    yield proc
    proc.stop()


def finished(job, timeout: float = 30):
    return wait_for(lambda: (j := job.refresh()).state in ("completed", "failed") and j,
                    timeout, message=f"job {job.id} to finish")  # fmt: skip


def basic_auth(request: dict) -> tuple[str, str]:
    scheme, _, value = request["headers"]["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(value).decode().partition(":")
    return user, password


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_it_sends_a_form_post_with_basic_auth_and_records_the_providers_id(provider, sms_worker):
    job = tasks.enqueue("send-sms", {"to": "+12025550101", "body": "Your code is 1234"})
    job = finished(job)
    assert job.state == "completed", job.failed_reason
    (request,) = provider.to("+12025550101")
    assert request["form"] == {"From": FROM, "To": "+12025550101", "Body": "Your code is 1234"}
    assert basic_auth(request) == (SID, TOKEN)
    assert request["headers"]["content-type"] == "application/x-www-form-urlencoded"
    message = Message.objects.get(job_id=job.id)
    assert request["headers"]["idempotency-key"] == f"message-{message.pk}"
    assert (message.channel, message.state, message.attempts) == ("sms", "sent", 1)
    assert message.provider_id == job.returnvalue["providerId"]
    assert message.provider_id.startswith("SM0-")  # the sid the provider answered


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_429_is_retried_no_sooner_than_its_retry_after(provider, sms_worker):
    job = finished(tasks.enqueue("send-sms", {"to": "+12025550102", "body": "hi"}))
    assert job.state == "completed" and job.attempts_made == 2
    first, second = provider.to("+12025550102")
    assert second["at"] - first["at"] >= 1.0  # the back-off alone is 50 ms in the tests
    assert first["headers"]["idempotency-key"] == second["headers"]["idempotency-key"]
    message = Message.objects.get(job_id=job.id)
    assert (message.state, message.attempts) == ("sent", 2)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_500_is_retried_with_back_off(provider, sms_worker):
    job = finished(tasks.enqueue("send-sms", {"to": "+12025550103", "body": "hi"}))
    assert job.state == "completed" and job.attempts_made == 2
    assert len(provider.to("+12025550103")) == 2
    assert Message.objects.get(job_id=job.id).state == "sent"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_400_fails_at_once_after_one_request(provider, sms_worker):
    job = finished(tasks.enqueue("send-sms", {"to": "+12025550104", "body": "hi"}))
    assert job.state == "failed" and job.attempts_made == 1
    assert "provider answered 400" in job.failed_reason
    time.sleep(0.5)  # no retry comes (the back-off would be 50 ms)
    assert len(provider.to("+12025550104")) == 1
    message = Message.objects.get(job_id=job.id)
    assert message.state == "failed" and "400" in message.last_error


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_whatsapp_and_notify_go_through_the_same_provider(provider, sms_worker):
    job = finished(tasks.enqueue("send-whatsapp", {"to": "+12025550105", "body": "hola"}))
    assert job.state == "completed"
    (request,) = provider.to("+12025550105")
    assert request["form"]["From"] == f"whatsapp:{WA_FROM}"
    assert request["form"]["To"] == "whatsapp:+12025550105"

    (message,) = notify("+12025550106", "welcome", {"name": "Ada", "link": "https://x.test"},
                        channels=["sms"])  # fmt: skip
    job = finished(tasks.get_job("notifications", f"message-{message.pk}"))
    assert job.state == "completed"
    (request,) = provider.to("+12025550106")
    assert request["form"]["Body"] == "Welcome, Ada: your account is ready. https://x.test\n"
    message.refresh_from_db()
    assert message.state == "sent" and message.provider_id.startswith("SM")
    # Run again (a redelivery): the row is sent, nothing goes out.
    again = run_job("deliver-sms", {"message_id": message.pk}, job_id="again")
    assert again.returnvalue["skipped"] is True
    assert len(provider.to("+12025550106")) == 1


# --- refused before anything is written or queued ----------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("number", ["12025550101", "+1202555", "+999123", "not a number", ""])
def test_an_invalid_number_is_refused_naming_the_field(number):
    with pytest.raises(tasks.InvalidJobData) as refused:
        tasks.enqueue("send-sms", {"to": number, "body": "hi"})
    assert [e["field"] for e in refused.value.errors] == ["to"]
    with pytest.raises(ValueError, match=r"^recipients\.1: "):
        notify(["+12025550101", number], "welcome", {"name": "A"}, channels=["sms"])
    assert tasks.Queue("notifications").counts()["waiting"] == 0
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_a_number_is_stored_in_e164():
    (message,) = notify("+1 (202) 555-0101", "welcome", {"name": "A"}, channels=["whatsapp"])
    assert message.recipient == "+12025550101" and message.channel == "whatsapp"


@pytest.mark.django_db
def test_a_row_with_a_bad_number_fails_for_good_without_a_request(settings):
    settings.SMS_PROVIDER = "http"
    settings.SMS_PROVIDER_URL = "http://127.0.0.1:9/never"
    message = Message.objects.create(channel="sms", recipient="+1202", body="x", job_id="m")
    job = run_job("deliver-sms", {"message_id": message.pk})
    assert job.state == "failed" and job.attempts_made == 1
    message.refresh_from_db()
    assert message.state == "failed" and message.last_error.startswith("recipient: ")


@pytest.mark.django_db
def test_the_console_provider_is_the_default(settings):
    assert settings.SMS_PROVIDER == "console"
    job = run_job("send-sms", {"to": "+12025550101", "body": "hi"})
    assert job.state == "completed"
    assert job.returnvalue["providerId"] == f"console-message-{job.returnvalue['messageId']}"


@pytest.mark.pure
def test_retry_after_reads_seconds_and_dates_and_is_capped(settings):
    settings.SMS_MAX_RETRY_AFTER_SECONDS = 60
    assert sms_providers.retry_after_ms("1") == 1000
    assert sms_providers.retry_after_ms("100000") == 60_000
    assert sms_providers.retry_after_ms("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412500) == 10_000
    assert sms_providers.retry_after_ms("soon") is None


@pytest.mark.pure
def test_check_number():
    assert sms.check_number("+49 30 12345678") == "+493012345678"
    for bad in ("030 12345678", "+49", None, 4930):
        with pytest.raises(ValueError):
            sms.check_number(bad)
    assert DeliveryError("x", retry_after_ms=5).retry_after_ms == 5
