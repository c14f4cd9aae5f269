"""GET /metrics: Jobyard's own state in Prometheus's text format (tasks/prometheus.py).

Guarded as the API is (a bearer token of read scope, or a staff session; 401 JSON without)
unless METRICS_AUTH is "none", for a web process whose /metrics nobody outside can reach
(docs/operations.md, "Metrics"). Served at the site's root, where scrapers look for it.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from tasks.api.base import READ, api_view
from tasks.api.errors import error_response
from tasks.prometheus import exposition


def _answer() -> HttpResponse:
    # Text format 0.0.4, which every Prometheus reads (1.0.0 needs Prometheus 3).
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
    response["Cache-Control"] = "no-store"
    return response


@api_view({"GET": READ})
def _guarded(request: HttpRequest) -> HttpResponse:
    return _answer()


def metrics(request: HttpRequest) -> HttpResponse:
    if settings.METRICS_AUTH == "token":
        return _guarded(request)
    if request.method not in ("GET", "HEAD"):
        response = error_response(
            405, "method_not_allowed", f"{request.method} is not allowed here"
        )
        response["Allow"] = "GET, HEAD"
        return response
    return _answer()


# What the OpenAPI document and the route walks read off an API view (see api_view).
metrics.api_methods = _guarded.api_methods  # type: ignore[attr-defined]
metrics.api_user_sessions = False  # type: ignore[attr-defined]
metrics.csrf_exempt = True  # type: ignore[attr-defined]
