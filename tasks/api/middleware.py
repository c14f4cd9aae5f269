"""Every error under /api/ is JSON, including those Django makes before a view runs.

First in MIDDLEWARE (project/settings.py). A request for /api/... with a Host header outside
ALLOWED_HOSTS is answered `400 disallowed_host` here: Django would raise DisallowedHost in
the next middleware and answer an HTML page (a debug page with DEBUG on). Any other error
response under /api/ that is not JSON (one a middleware made) is rewritten as the JSON error
of its status. Paths outside /api/ (the admin, /healthz) are left as Django answers them.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

import structlog
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from tasks.api.errors import error_response

log = structlog.get_logger("jobyard.api")

#: The code of an error made outside the API's views, by status.
CODES = {400: "bad_request", 403: "forbidden", 404: "path_not_found",
         405: "method_not_allowed", 413: "body_too_large", 500: "internal_error"}  # fmt: skip


def is_api(request: HttpRequest) -> bool:
    return request.path_info == "/api" or request.path_info.startswith("/api/")


class ApiJsonErrors:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not is_api(request):
            return self.get_response(request)
        try:
            request.get_host()
        except DisallowedHost:
            log.warning("api_disallowed_host", host=request.META.get("HTTP_HOST", "")[:200])
            return error_response(
                400, "disallowed_host", "the Host header names no host this server answers to"
            )
        response = self.get_response(request)
        if response.status_code >= 400 and not _is_json(response):
            return _as_json(response)
        return response


def _is_json(response: HttpResponseBase) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip() in (
        "application/json",
        "text/event-stream",  # not an error; never rewritten
    )


def _as_json(response: HttpResponseBase) -> HttpResponse:
    status = response.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    replaced = error_response(status, CODES.get(status, "error"), phrase.lower())
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in response:
            replaced[header] = response[header]
    return replaced
