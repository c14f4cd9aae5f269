"""Webhooks (issue #13): signed deliveries to a receiver on 127.0.0.1 through real workers,
retries and their fate, the SSRF guard (in this process, resolver stubbed, nothing sent off
the machine), replay, the event loop, and the API's bad input."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction

import tasks
from catalog.models import OutboundEvent
from notifications.models import Delivery, Endpoint
from notifications.webhooks import delivery as delivery_module
from notifications.webhooks import guard, service, signing
from tasks.testing import WorkerProcess, run_job
from tests.api.conftest import api, assert_error, make_token, reader  # noqa: F401
from tests.conftest import wait_for

BASE_DIR = Path(__file__).resolve().parents[2]
SECRET = "a-shared-secret-of-at-least-24-characters"


def documented_verifier():
    """verify_webhook, exec'd from docs/webhooks.md: the snippet receivers copy."""
    text = (BASE_DIR / "docs" / "webhooks.md").read_text()
    code = next(
        b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify_webhook" in b
    )
    scope: dict = {}
    exec(code, scope)
    return scope["verify_webhook"]


verify_webhook = documented_verifier()


class Receiver:
    """An HTTP server on 127.0.0.1 answering per path; it records every request and
    whether its signature verified with the documented snippet."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.counts: dict[str, int] = {}
        self.secret = SECRET
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path
                n = receiver.counts[path] = receiver.counts.get(path, 0) + 1
                receiver.requests.append({
                    "path": path, "at": time.monotonic(), "body": body,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "verified": verify_webhook(receiver.secret, {k.lower(): v for k, v in self.headers.items()}, body),
                })  # fmt: skip
                status, headers = 200, {}
                if path.startswith("/retry") and n == 1:
                    status, headers = 503, {"Retry-After": "1"}
                elif path.startswith("/bad"):
                    status = 400
                elif path.startswith("/gone"):
                    status = 410
                elif path.startswith("/redirect-private"):
                    status, headers = 302, {"Location": "http://internal.example/hook"}
                elif path.startswith("/redirect-metadata"):
                    status, headers = 307, {"Location": "http://169.254.169.254/latest/meta-data"}
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def webhook_worker(django_db_setup) -> Iterator[WorkerProcess]:
    """A real worker on the webhooks queue, allowed to deliver to 127.0.0.1, disabling an
    endpoint after 2 final failures in a row."""
    proc = WorkerProcess(["webhooks"], concurrency=2, env={
        "WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_DISABLE_AFTER_FAILURES": "2"}, cwd=BASE_DIR)  # fmt: skip
    proc.start()
    yield proc
    proc.stop()


def endpoint(url: str, types=("ping",), **fields) -> Endpoint:
    return Endpoint.objects.create(url=url, secret=SECRET, event_types=list(types), **fields)


def send(ep: Endpoint, event_type: str = "ping", payload: dict | None = None) -> Delivery:
    with transaction.atomic():
        return service.create_deliveries(event_type, f"evt_{time.time_ns()}", payload or {"n": 1},
                                         endpoints=[ep])[0]  # fmt: skip


def settled(delivery: Delivery, timeout: float = 30) -> Delivery:
    return wait_for(lambda: (d := Delivery.objects.get(pk=delivery.pk)).status in ("delivered", "failed") and d,
                    timeout, message=f"delivery {delivery.pk} to settle")  # fmt: skip


# --- real workers ---------------------------------------------------------------------------

real = pytest.mark.django_db(transaction=True)


@real
@pytest.mark.slow
def test_it_delivers_a_signed_request_the_documented_snippet_verifies(receiver, webhook_worker):
    ep = endpoint(receiver.url("/ok"))
    delivery = settled(send(ep, payload={"hello": "world"}))
    assert delivery.status == "delivered" and delivery.response_code == 200
    (request,) = receiver.at("/ok")
    assert request["verified"]
    assert request["headers"]["webhook-id"] == delivery.event_id
    assert request["headers"]["webhook-signature"].startswith("v1,")
    assert json.loads(request["body"]) == {"type": "ping", "timestamp": delivery.created_at.isoformat(),
                                           "data": {"hello": "world"}}  # fmt: skip
    attempt = delivery.attempt_rows.get()
    assert (attempt.number, attempt.outcome, attempt.response_excerpt) == (1, "delivered", "ok")
    assert tasks.get_job("webhooks", f"delivery-{delivery.pk}").state == "completed"
    # A tampered body or another secret does not verify.
    assert not verify_webhook(SECRET, request["headers"], request["body"] + b" ")
    assert not verify_webhook(
        "another-secret-of-24-characters!", request["headers"], request["body"]
    )


@real
@pytest.mark.slow
def test_it_retries_a_503_no_sooner_than_its_retry_after(receiver, webhook_worker):
    ep = endpoint(receiver.url("/retry"))
    delivery = settled(send(ep))
    assert delivery.status == "delivered" and delivery.attempts == 2
    first, second = receiver.at("/retry")
    assert second["at"] - first["at"] >= 1.0  # the back-off alone is 0.3 s in the tests
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    assert [a.outcome for a in delivery.attempt_rows.all()] == ["retry", "delivered"]
    assert delivery.attempt_rows.first().response_code == 503


@real
@pytest.mark.slow
def test_a_400_fails_at_once_and_two_in_a_row_disable_the_endpoint(receiver, webhook_worker):
    ep = endpoint(receiver.url("/bad"), owner_email="ops@example.org")
    first = settled(send(ep))
    assert (first.status, first.attempts, first.response_code) == ("failed", 1, 400)
    assert "answered 400" in first.error
    ep.refresh_from_db()
    assert ep.active and ep.consecutive_failures == 1
    settled(send(ep))
    ep.refresh_from_db()
    assert not ep.active and ep.consecutive_failures == 2
    assert "2 deliveries in a row failed" in ep.disabled_reason
    assert wait_for(lambda: Endpoint.objects.get(pk=ep.pk).owner_notified_at, 10)
    from notifications.models import Message

    told = Message.objects.get(recipient="ops@example.org", template="webhook-endpoint-disabled")
    assert ep.url in told.subject
    assert service.subscribers("ping") == []  # a disabled endpoint gets no new deliveries


@real
@pytest.mark.slow
def test_a_410_disables_the_endpoint_at_once(receiver, webhook_worker):
    ep = endpoint(receiver.url("/gone"))
    delivery = settled(send(ep))
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, 410)
    ep.refresh_from_db()
    assert not ep.active and "410" in ep.disabled_reason


@real
@pytest.mark.slow
def test_a_replay_is_a_new_delivery_of_the_same_event(receiver, webhook_worker, api):  # noqa: F811
    ep = endpoint(receiver.url("/replayed"))
    original = settled(send(ep))
    response = api.post_json(f"/api/v1/webhooks/deliveries/{original.pk}/replay")
    assert response.status_code == 202, response.content
    again = settled(Delivery.objects.get(pk=response.json()["id"]))
    assert again.pk != original.pk and again.replay_of_id == original.pk
    assert (again.status, again.event_id, again.payload) == (
        "delivered",
        original.event_id,
        original.payload,
    )
    assert len(receiver.at("/replayed")) == 2
    assert Delivery.objects.get(pk=original.pk).attempts == 1  # the original is left as it was


@real
@pytest.mark.slow
def test_job_events_become_deliveries_through_the_event_loop(receiver, webhook_worker, worker):
    ep = endpoint(receiver.url("/jobs"), types=["job.completed", "job.failed", "job.dead"])
    call_command("webhook_events", "--once", "--block-ms", "50")  # the group starts here
    done = tasks.enqueue("ping", {})
    failed = tasks.enqueue("t-fail", {"message": "boom"})
    done.wait_until_finished(timeout=30)
    with pytest.raises(tasks.JobFailed):
        failed.wait_until_finished(timeout=30)

    def made():
        call_command("webhook_events", "--once", "--block-ms", "50")
        return Delivery.objects.filter(endpoint=ep).count() >= 3

    wait_for(made, 30, message="three deliveries")
    by_type = {d.event_type: settled(d) for d in Delivery.objects.filter(endpoint=ep)}
    assert sorted(by_type) == ["job.completed", "job.dead", "job.failed"]
    assert all(d.status == "delivered" for d in by_type.values())
    assert by_type["job.completed"].payload["jobId"] == done.id
    assert by_type["job.completed"].payload["name"] == "ping"
    assert by_type["job.dead"].payload["failedReason"] == "PermanentError: boom"
    assert by_type["job.failed"].payload["willRetry"] is False
    assert all(r["verified"] for r in receiver.at("/jobs"))
    call_command("webhook_events", "--once", "--block-ms", "50")  # nothing is made twice
    assert Delivery.objects.filter(endpoint=ep).count() == 3


@real
@pytest.mark.slow
def test_outbox_rows_become_deliveries_and_are_marked_delivered(receiver, webhook_worker):
    ep = endpoint(receiver.url("/outbox"), types=["calc.batch.completed", "report.ready"],
                  tenant_id="acme")  # fmt: skip
    other = endpoint(receiver.url("/other"), types=["calc.batch.completed"], tenant_id="globex")
    calc = OutboundEvent.objects.create(type="calc.batch.completed", tenant_id="acme",
                                        key="calc.batch.completed:1", payload={"batchId": 1})  # fmt: skip
    call_command("webhook_events", "--once", "--block-ms", "10")
    calc.refresh_from_db()
    assert calc.delivered_at is not None
    delivery = settled(Delivery.objects.get(endpoint=ep))
    assert (delivery.event_type, delivery.payload, delivery.status) == (
        "calc.batch.completed", {"batchId": 1}, "delivered")  # fmt: skip
    assert not Delivery.objects.filter(endpoint=other).exists()  # another tenant's endpoint


@real
def test_a_ready_report_tells_its_requester_once():
    """report.ready from the catalog's outbox: the requester's inbox and email, once."""
    from django.contrib.auth.models import User

    from notifications.models import Message

    ada = User.objects.create(username="ada-reports", email="ada@example.test")
    payload = {"reportId": 7, "userId": ada.pk, "reportType": "comet-catalog", "format": "csv",
               "rows": 3, "size": 99, "url": "/api/v1/reports/7/file"}  # fmt: skip
    OutboundEvent.objects.create(type="report.ready", tenant_id="", key="report.ready:7",
                                 payload=payload)  # fmt: skip
    call_command("webhook_events", "--once", "--block-ms", "10")
    call_command("webhook_events", "--once", "--block-ms", "10")  # handled once, not twice
    told = Message.objects.filter(template="report-ready", user=ada)
    assert sorted(told.values_list("channel", flat=True)) == ["email", "inapp"]
    assert "/api/v1/reports/7/file" in told.get(channel="email").body


# --- the SSRF guard, in this process ----------------------------------------------------------


@pytest.fixture
def offline(monkeypatch, settings):
    """Names resolve through a table; any connect to a non-loopback address fails the test
    (203.0.113.10, the 'public' test address, is sent to 127.0.0.1 instead)."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    names = {"internal.example": ["10.0.0.7"], "public.example": ["203.0.113.10"],
             "rebind.example": ["93.184.216.34", "10.0.0.5"], "v6.example": ["fd00::1"]}  # fmt: skip
    monkeypatch.setattr(guard, "resolve", lambda host, port: names[host])
    real_refusal = guard.refusal
    monkeypatch.setattr(
        guard, "refusal", lambda a: None if a == "203.0.113.10" else real_refusal(a)
    )
    connects: list = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else None
        if host == "203.0.113.10":
            address = ("127.0.0.1", address[1])
        elif host is not None and not ipaddress.ip_address(host).is_loopback:
            connects.append(address)
            raise AssertionError(f"a connect to {address} was attempted")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return connects


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:9/hook", "127.0.0.1 is a loopback address"),
    ("http://10.0.0.1/hook", "10.0.0.1 is a private or reserved address"),
    ("http://169.254.169.254/latest/meta-data", "a cloud metadata service"),
    ("http://[::1]:8080/hook", "::1 is a loopback address"),
    ("http://[::ffff:10.0.0.1]/hook", "10.0.0.1 is a private or reserved address"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://internal.example/hook", "internal.example resolves to 10.0.0.7"),
    ("http://rebind.example/hook", "10.0.0.5 is a private"),
    ("http://v6.example/hook", "fd00::1 is a private"),
    ("ftp://public.example/hook", "not an http(s) URL"),
])  # fmt: skip
def test_the_guard_refuses_private_targets_with_a_reason_on_the_row(url, reason, offline):
    ep = endpoint(url)
    delivery = Delivery.objects.create(endpoint=ep, event_type="ping", event_id="e1", payload={})
    with pytest.raises(guard.RefusedTarget):
        delivery_module.deliver(delivery.pk, attempt=1, last=False)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and reason in delivery.error, delivery.error
    assert delivery.attempt_rows.get().outcome == "refused"
    assert offline == []  # nothing was sent off the machine


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/redirect-private", "/redirect-metadata"])
def test_a_public_target_redirecting_to_a_private_one_is_refused(path, offline, receiver):
    ep = endpoint(f"http://public.example:{receiver.port}{path}")
    delivery = Delivery.objects.create(endpoint=ep, event_type="ping", event_id="e2", payload={})
    with pytest.raises(guard.RefusedTarget):
        delivery_module.deliver(delivery.pk, attempt=1, last=False)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "refused" in delivery.error
    (first,) = receiver.at(path)  # the public hop was made, named as the URL names it
    assert first["headers"]["host"] == f"public.example:{receiver.port}"
    assert offline == []


@pytest.mark.pure
def test_retry_after_reads_seconds_and_dates_and_is_capped(settings):
    settings.WEBHOOK_MAX_RETRY_AFTER_SECONDS = 60
    assert delivery_module.retry_after_ms("1") == 1000
    assert delivery_module.retry_after_ms("100000") == 60_000
    assert delivery_module.retry_after_ms("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412500) == 10_000
    assert delivery_module.retry_after_ms("soon") is None


@pytest.mark.pure
def test_signatures_follow_standard_webhooks():
    # Standard Webhooks' reference vector (its libraries' tests).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


# --- the platform's RetryAfter ---------------------------------------------------------------


@tasks.job_type("t-retry-after", queue="default", attempts=3,
                backoff={"type": "fixed", "delay": 10})  # fmt: skip
def retry_after_job(job) -> None:
    raise tasks.RetryAfter("come back later", 1500)


def test_retry_after_makes_the_next_attempt_wait_at_least_its_delay():
    job = run_job("t-retry-after", {})
    assert (job.state, job.attempts_made) == ("delayed", 1)
    assert job.delay_until - job.processed_on >= 1500
    assert job.failed_reason == "RetryAfter: come back later"


# --- the API ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://example.com/x", "eventTypes": ["ping"]}, "url"),
    ({"url": "not a url", "eventTypes": ["ping"]}, "url"),
    ({"url": "https://example.com/x", "eventTypes": ["ping"], "secret": "short"}, "secret"),
    ({"url": "https://example.com/x", "eventTypes": ["job.exploded"]}, "eventTypes"),
    ({"url": "https://example.com/x", "eventTypes": []}, "eventTypes"),
    ({"url": "https://example.com/x"}, "eventTypes"),
])  # fmt: skip
def test_the_api_refuses_bad_endpoints_naming_the_field(api, body, field):  # noqa: F811
    error = assert_error(api.post_json("/api/v1/webhooks/endpoints", body), 400, "invalid_request")
    assert field in [f["field"] for f in error["fields"]]
    assert not Endpoint.objects.exists()


@pytest.mark.django_db
def test_the_api_creates_lists_and_pings_endpoints(api, reader):  # noqa: F811
    response = api.post_json("/api/v1/webhooks/endpoints",
                             {"url": "https://hooks.example.com/x", "eventTypes": ["job.dead"]})  # fmt: skip
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_") and created["active"]
    listed = reader.get("/api/v1/webhooks/endpoints").json()["endpoints"]
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
    assert_error(reader.post_json("/api/v1/webhooks/endpoints", {}), 403, "insufficient_scope")
    ping = api.post_json(f"/api/v1/webhooks/endpoints/{created['id']}/ping")
    assert ping.status_code == 202 and ping.json()["eventType"] == "ping"
    assert_error(api.post_json("/api/v1/webhooks/endpoints/999/ping"), 404, "endpoint_not_found")
    detail = reader.get(f"/api/v1/webhooks/deliveries/{ping.json()['id']}").json()
    assert detail["payload"]["endpointId"] == created["id"] and detail["attemptRows"] == []
