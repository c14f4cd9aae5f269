"""What every API view shares: authentication, scopes, methods, JSON bodies, errors.

`@api_view({"GET": READ, "DELETE": WRITE})` wraps a view that returns an HttpResponse:
its JSON through `respond(Model, payload, status)` (tasks.api.schemas), so that every body
is checked by the model the OpenAPI document is generated from. In order: the caller must
authenticate (401), the method must be one the view answers (405), the caller's scope
must cover it (403), a session's unsafe request must carry its CSRF token (403). Any
Jobyard error becomes the 4xx that fits; Redis or the database being away becomes a 503;
only a bug is a 500, and that too is JSON.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from pydantic import BaseModel, ValidationError

from tasks.api import tokens
from tasks.api.auth import READ, WRITE, authenticate, check_csrf
from tasks.api.errors import ApiError, error_for, error_response
from tasks.options import ID_PATTERN, validation_errors

log = structlog.get_logger("jobyard.api")

__all__ = ["READ", "WRITE", "api_view", "parse_model", "query_int", "read_json"]

_ID = re.compile(ID_PATTERN)


def api_view(methods: dict[str, str], *, user_sessions: bool = False) -> Callable:
    """Decorate a view; `methods` maps each HTTP method it answers to the scope it needs.

    `user_sessions=True` also lets in a logged-in user who is not staff (with the CSRF
    token on unsafe methods, as staff sessions): only for a view that serves the caller's
    own rows and checks `request.api_principal.user_session` where it must (docs/api.md).
    """
    allowed = dict(methods)
    if "GET" in allowed:
        allowed.setdefault("HEAD", allowed["GET"])

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                principal = authenticate(request, user_sessions)
                needed = allowed.get(request.method or "")
                if needed is None:
                    response = error_response(
                        405, "method_not_allowed", f"{request.method} is not allowed here"
                    )
                    response["Allow"] = ", ".join(sorted(allowed))
                    return response
                if not principal.allows(needed):
                    raise ApiError(
                        403, "insufficient_scope", f"this needs a {needed} token; yours is read"
                    )
                check_csrf(request, principal)
                if principal.token is not None:
                    tokens.touch(principal.token)
                request.api_principal = principal
                result = view(request, *args, **kwargs)
                if not isinstance(result, HttpResponseBase):
                    raise TypeError(f"{view.__name__} must answer through respond(Model, ...)")
            except Exception as exc:  # every failure leaves as JSON
                api_error = error_for(exc)
                if api_error is None:
                    log.exception("api_error", path=request.path, method=request.method)
                    return error_response(500, "internal_error", "internal error; see the logs")
                return api_error.response()
            return result

        # Bearer requests carry no cookie to forge; sessions are checked in check_csrf.
        wrapper.csrf_exempt = True  # type: ignore[attr-defined]
        wrapper.api_methods = allowed  # type: ignore[attr-defined]
        wrapper.api_user_sessions = user_sessions  # type: ignore[attr-defined]
        return wrapper

    return decorate


def read_json(request: HttpRequest, required: bool = True) -> dict[str, Any]:
    """The request's JSON object body: 413 past the size cap, 415 for another content
    type, 400 when it is not JSON or not an object. `required=False`: no body is `{}`."""
    limit = settings.JOBYARD_API["MAX_BODY_BYTES"]
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise ApiError(413, "body_too_large", f"the body is over {limit} bytes")
    body = request.body
    if len(body) > limit:
        raise ApiError(413, "body_too_large", f"the body is over {limit} bytes")
    if not body.strip():
        if required:
            raise ApiError(400, "invalid_json", "a JSON object body is required")
        return {}
    content_type = request.content_type or ""
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type", "send the body as application/json", got=content_type
        )
    try:
        value = json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_model(model: type[BaseModel], data: dict[str, Any], where: str = "") -> Any:
    """`data` validated by `model`, or a 422 naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = [{**e, "field": f"{where}{e['field']}"} for e in validation_errors(exc)]
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        raise ApiError(422, "invalid_request", detail, fields=fields) from None


def query_int(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        message = f"must be an integer from {low} to {high}"
        raise ApiError(
            422,
            "invalid_request",
            f"{name}: {message}",
            fields=[{"field": name, "message": message}],
        )
    return value


def valid_id(job_id: str) -> bool:
    """Ids outside the registry's pattern cannot exist: no need to ask Redis."""
    return bool(_ID.match(job_id))
