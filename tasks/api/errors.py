"""The API's errors: JSON `{"error": {"code", "message", ...}}`, never HTML.

Views raise ApiError (or let a Jobyard error through); `error_for` turns either into the
status that fits, so bad input is always a 4xx and never a 500.
"""

from __future__ import annotations

from typing import Any

import redis
import structlog
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.http.multipartparser import MultiPartParserError
from pydantic import ValidationError

from tasks import (
    InvalidFlow,
    InvalidJobData,
    InvalidJobOptions,
    InvalidJobState,
    JobyardError,
    UnknownJobType,
    UnknownQueue,
)
from tasks.api import schemas

log = structlog.get_logger("jobyard.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> HttpResponse:
        response = error_response(self.status, self.code, self.message, **self.extra)
        for name, value in self.headers.items():
            response[name] = value
        return response


def error_response(status: int, code: str, message: str, **extra: Any) -> HttpResponse:
    """The error as JSON, through its model (schemas.Error): an `extra` key the model
    lacks is a bug, answered as the plain 500 rather than an error the document hides."""
    try:
        body = {"error": {"code": code, "message": message, **extra}}
        response = schemas.respond(schemas.Error, body, status)
    except ValidationError:
        log.exception("api_error_body_invalid", code=code)
        return error_response(500, "internal_error", "internal error; see the logs")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="jobyard"'
    return response


def not_found(what: str, message: str) -> ApiError:
    return ApiError(404, f"{what}_not_found", message)


def error_for(exc: Exception) -> ApiError | None:
    """The ApiError an exception stands for, or None when it is a bug (a 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UnknownJobType):
        return ApiError(400, "unknown_job_type", str(exc), known=exc.known)
    if isinstance(exc, InvalidJobData):
        return ApiError(422, "invalid_job_data", str(exc), fields=exc.errors)
    if isinstance(exc, InvalidJobOptions):
        fields = [{**e, "field": f"options.{e['field']}"} for e in exc.errors]
        return ApiError(422, "invalid_job_options", str(exc), fields=fields)
    if isinstance(exc, InvalidFlow):
        return ApiError(422, "invalid_flow", str(exc), fields=exc.errors)
    if isinstance(exc, UnknownQueue):
        return ApiError(404, "queue_not_found", str(exc), known=list(settings.JOBYARD_QUEUES))
    if isinstance(exc, InvalidJobState):
        return ApiError(409, "invalid_job_state", str(exc))
    if isinstance(exc, JobyardError):
        return ApiError(400, "bad_request", str(exc))
    if isinstance(exc, RequestDataTooBig):
        return ApiError(413, "body_too_large", "the body is too large")
    if isinstance(exc, SuspiciousOperation | MultiPartParserError):
        # Django's own refusals of a request (too many fields, a malformed form body...).
        return ApiError(400, "bad_request", f"the request was refused: {type(exc).__name__}")
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return ApiError(503, "redis_unavailable", "the job registry (Redis) is unreachable")
    if isinstance(exc, OperationalError | InterfaceError):
        return ApiError(503, "database_unavailable", "the database is unreachable")
    return None
