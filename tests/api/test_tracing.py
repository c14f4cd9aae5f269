"""Opt-in traces: a job enqueued by a web request and run by a worker (another process) is
one trace. The web side exports to an in-memory exporter in this process; the worker, with
OTEL_EXPORTER_OTLP_ENDPOINT set, to a tiny OTLP/HTTP receiver this test runs on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from project.localdev import free_port
from tasks import get_job, tracing
from tests.api.conftest import ApiClient
from tests.conftest import wait_for


@cache
def _exporter():
    """This process's tracer provider, set once (OpenTelemetry allows one per process)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing.setup("jobyard-web-test", exporter=exporter)
    return exporter


@pytest.fixture
def traced_web(settings) -> Iterator:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    settings.OTEL_ENABLED = True
    exporter = _exporter()
    exporter.clear()
    DjangoInstrumentor().instrument()
    yield exporter
    DjangoInstrumentor().uninstrument()


class _Receiver(BaseHTTPRequestHandler):
    spans: list = []

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list]]:
    spans: list = []
    handler = type("Receiver", (_Receiver,), {"spans": spans})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", spans
    server.shutdown()
    server.server_close()


def test_it_is_off_without_an_endpoint(settings):
    assert settings.OTEL_ENABLED is False  # the test settings set no endpoint
    with tracing.enqueue_span("t-echo.catalog", "catalog") as carrier:
        assert carrier is None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_run_span_continues_the_enqueue_spans_trace(traced_web, otlp_receiver, start_worker,
                                                        make_token):  # fmt: skip
    endpoint, received = otlp_receiver
    start_worker(["catalog"], concurrency=1, pool="solo",
                 env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"})  # fmt: skip
    response = ApiClient(make_token("write")).post_json(
        "/api/admin/jobs/trigger", {"jobType": "t-echo.catalog", "value": 7}
    )
    assert response.status_code == 202, response.content
    job_id = response.json()["jobId"]
    assert get_job("catalog", job_id).wait_until_finished(timeout=60) == 7

    web = {s.name: s for s in traced_web.get_finished_spans()}
    enqueue = web["enqueue t-echo.catalog"]
    request = next(s for s in web.values() if s.kind.name == "SERVER")
    assert enqueue.context.trace_id == request.context.trace_id  # inside the request's span
    assert enqueue.parent.span_id == request.context.span_id

    run = wait_for(lambda: next((s for s in received if s.name == "run t-echo.catalog"), None),
                   timeout=30, message="the worker's run span")  # fmt: skip
    assert int.from_bytes(run.trace_id, "big") == enqueue.context.trace_id
    assert int.from_bytes(run.parent_span_id, "big") == enqueue.context.span_id
    attributes = {a.key: a.value.string_value or a.value.int_value for a in run.attributes}
    assert attributes["messaging.message.id"] == job_id
    assert attributes["jobyard.attempt"] == 1
    # Celery's own span of the same run (opentelemetry-instrumentation-celery), linked.
    celery_span = wait_for(lambda: next((s for s in received if s.name.startswith("run/")), None),
                           timeout=30, message="Celery's span")  # fmt: skip
    assert [link.span_id for link in run.links] == [celery_span.span_id]
