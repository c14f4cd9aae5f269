"""OpenTelemetry traces, opt-in: on when OTEL_EXPORTER_OTLP_ENDPOINT is set.

A job's life is one trace across processes: the web request (Django's instrumentation),
the enqueue span inside it, and the job's run span in a worker, whatever sent the job. The
enqueue span's context travels in the job itself, as W3C trace context in the job hash's
`trace` field, written in the same MULTI as the job (so a job enqueued through the
registry, by the API, the CLI, the admin or a schedule, carries it without any Celery
message header); the runner reads it back (one HGET per run, only with tracing on) and
opens the run span as its child. Celery's own spans (opentelemetry-instrumentation-celery)
are linked from the run span.

Off (no endpoint), nothing here imports OpenTelemetry's SDK and every helper is a no-op.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from django.conf import settings

#: The instrumentation scope of Jobyard's own spans.
SCOPE = "jobyard"

_ready = False


def enabled() -> bool:
    return bool(settings.OTEL_ENABLED)


def setup(service: str, exporter: Any = None, django: bool = False, celery: bool = False) -> bool:
    """Install the tracer provider once per process (OTLP over HTTP, batched; `exporter`
    instead, synchronously: tests) and the instrumentations asked for. False when off.

    A batch processor survives a prefork pool's fork (the SDK restarts its thread in the
    child), so a worker sets this up once, in its main process."""
    global _ready
    if not enabled() or _ready:
        return _ready
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if django:
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument()
    if celery:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument()
    _ready = True
    return True


def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer(SCOPE)


@contextlib.contextmanager
def enqueue_span(name: str, queue: str) -> Iterator[str | None]:
    """The span of enqueueing a job of type `name`; yields the trace context to store with
    the job (JSON), or None when tracing is off."""
    if not enabled():
        yield None
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    with _tracer().start_as_current_span(
        f"enqueue {name}", kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "jobyard", "messaging.destination.name": queue,
                    "jobyard.job_type": name},
    ):  # fmt: skip
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield json.dumps(carrier)


@contextlib.contextmanager
def run_span(name: str, queue: str, job_id: str, attempt: int, carrier: str | None) -> Iterator:
    """The span of one run of a job, a child of the span that enqueued it (`carrier`, the
    stored context), linked to the current span (Celery's); a no-op when tracing is off."""
    if not enabled():
        yield None
        return
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanKind

    parent = propagate.extract(json.loads(carrier)) if carrier else None
    current = trace.get_current_span().get_span_context()
    links = [Link(current)] if current.is_valid else []
    with _tracer().start_as_current_span(
        f"run {name}", context=parent, kind=SpanKind.CONSUMER, links=links,
        attributes={"messaging.system": "jobyard", "messaging.destination.name": queue,
                    "messaging.message.id": job_id, "jobyard.job_type": name,
                    "jobyard.attempt": attempt},
    ) as span:  # fmt: skip
        yield span
