"""The OpenAPI 3.1 document (/api/v1/openapi.json) and its docs page (/api/v1/docs).

Built from the job type declarations (each type's parameter schema becomes a trigger body)
and from the endpoint shapes below, so the document, the trigger's validation, the CLI and
the admin form all follow the one declaration. The docs page is rendered on the server
from the same document: no script and nothing fetched from elsewhere.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import render

from tasks import job_types
from tasks.api.base import READ, api_view
from tasks.api.views import CleanRequest
from tasks.options import ID_PATTERN, JobOptions
from tasks.states import STATES

#: The job events (tasks.events) an event stream carries.
EVENTS = ("waiting", "active", "progress", "completed", "failed", "delayed", "retrying",
          "stalled", "removed", "paused", "resumed")  # fmt: skip
_CURSOR = r"[A-Za-z0-9_.\-]+=\d+-\d+"
_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], required: list[str] | None = None,
            extra: bool = False, **more: Any) -> dict[str, Any]:  # fmt: skip
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "additionalProperties": extra, **more}  # fmt: skip
    schema["required"] = list(properties) if required is None else required
    return schema


def _counts() -> dict[str, Any]:
    return _object({state: {"type": "integer", "minimum": 0} for state in STATES},
                   description="Jobs per state.")  # fmt: skip


def _job() -> dict[str, Any]:
    timestamps = _object({name: _NULLABLE_INT for name in
                          ("createdAt", "processedOn", "finishedOn", "delayUntil")},
                         description="Milliseconds since the epoch.")  # fmt: skip
    return _object(
        {
            "id": {"type": "string"},
            "name": {"type": "string", "description": "the job type"},
            "queue": {"type": "string"},
            "state": {"type": "string", "enum": list(STATES)},
            "progress": {"description": "a number 0-100 or a JSON object"},
            "data": {"type": "object", "description": "the job's parameters (snake_case)"},
            "opts": {"type": "object"},
            "returnvalue": {"description": "what the job returned (any JSON)"},
            "attemptsMade": {"type": "integer"},
            "attempts": {"type": "integer"},
            "failedReason": {"type": ["string", "null"]},
            "stacktrace": {"type": "array", "items": {"type": "string"}},
            "priority": _NULLABLE_INT,
            "worker": {"type": ["string", "null"]},
            "stalledCount": {"type": "integer"},
            "schedule": {
                "type": ["string", "null"],
                "description": "the schedule whose run this is",
            },
            "timestamps": timestamps,
        }
    )


def _error() -> dict[str, Any]:
    field_error = _object({"field": {"type": "string"}, "message": {"type": "string"}})
    detail = _object(
        {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "fields": {"type": "array", "items": field_error,
                       "description": "each field at fault and why (422)"},
            "known": {"type": "array", "items": {"type": "string"},
                      "description": "the known job types (400) or queues (404)"},
        },
        required=["code", "message"],
        extra=True,
    )  # fmt: skip
    return _object({"error": detail})


def _timing() -> dict[str, Any]:
    return _object({"mean": _NULLABLE_NUMBER, "p95": _NULLABLE_NUMBER,
                    "samples": {"type": "integer"}})  # fmt: skip


def _metrics() -> dict[str, Any]:
    minute = _object({"minute": {"type": "integer"}, "completed": {"type": "integer"},
                      "failed": {"type": "integer"}, "retried": {"type": "integer"}})  # fmt: skip
    return _object(
        {
            "queue": {"type": "string"},
            "paused": {"type": "boolean"},
            "counts": _ref("Counts"),
            "completedPerMinute": {"type": "number"},
            "failedPerMinute": {"type": "number"},
            "processedPerMinute": {"type": "number"},
            "failureRate": {"type": "number", "description": "failed / finished, last hour"},
            "processingMs": _ref("Timing"),
            "waitingMs": _ref("Timing"),
            "workers": {"type": "integer"},
            "utilization": {**_NULLABLE_NUMBER, "description": "running / concurrency"},
            "lastHour": {"type": "array", "items": minute},
        }
    )


def _worker() -> dict[str, Any]:
    strings = {"type": "array", "items": {"type": "string"}}
    return _object({"name": {"type": "string"}, "host": {"type": "string"},
                    "pid": {"type": "integer"}, "queues": strings,
                    "concurrency": {"type": "integer"}, "running": {"type": "integer"},
                    "paused": {**strings, "description": "its queues that are paused"},
                    "lastHeartbeat": {"type": "integer"}, "startedAt": {"type": "integer"}})  # fmt: skip


def _schedule() -> dict[str, Any]:
    return _object({"key": {"type": "string"}, "jobType": {"type": "string"},
                    "queue": {"type": ["string", "null"]},
                    "pattern": {"type": "string", "description": "cron fields or interval"},
                    "next": {"type": ["string", "null"], "format": "date-time"},
                    "enabled": {"type": "boolean"}})  # fmt: skip


def _schemas() -> dict[str, Any]:
    jobs = {"type": "array", "items": _ref("Job")}
    return {
        "Error": _error(),
        "Counts": _counts(),
        "Job": _job(),
        "Timing": _timing(),
        "QueueMetrics": _metrics(),
        "Worker": _worker(),
        "Schedule": _schedule(),
        "Status": _object(
            {
                "queueStats": _ref("Counts"),
                "queues": {"type": "object", "additionalProperties": _ref("Counts")},
                "recentJobs": jobs,
            }
        ),  # fmt: skip
        "QueueDetail": _object(
            {
                "name": {"type": "string"},
                "paused": {"type": "boolean"},
                "counts": _ref("Counts"),
                "recent": _object({"completed": jobs, "failed": jobs, "active": jobs}),
                "scheduled": {"type": "array", "items": _ref("Schedule")},
            }
        ),  # fmt: skip
        "JobPage": _object(
            {
                "queue": {"type": "string"},
                "states": {"type": "array", "items": {"type": "string"}},
                "start": {"type": "integer"},
                "end": {"type": "integer"},
                "jobs": jobs,
            }
        ),  # fmt: skip
        "Event": _object(
            {
                "event": {"type": "string", "enum": [*EVENTS, "end", "error"]},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "description": "{queue, event, jobId, timestamp, and the event's fields}",
                },
                "id": {
                    "type": "string",
                    "pattern": rf"^{_CURSOR}(,{_CURSOR})*$",
                    "description": "queue=streamId per queue: send it back as Last-Event-ID",
                },
                "retry": {"type": "integer"},
            },
            required=["event", "data"],
            description="One server-sent event (the stream's items).",
        ),
        "TriggerResult": _object(
            {
                "jobId": {"type": "string"},
                "queue": {"type": "string"},
                "state": {"type": "string", "enum": list(STATES)},
                "created": {"type": "boolean"},
                "job": {**_ref("Job"), "description": "the existing job (200 only)"},
            },
            required=["jobId", "queue", "state", "created"],
        ),  # fmt: skip
    }


class _Hoister:
    """Moves pydantic's `$defs` into components/schemas (a `#/$defs/...` ref would point at
    the document's root in OpenAPI), renaming on a clash with a different schema."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas

    def add(self, name: str, schema: dict[str, Any]) -> str:
        schema = copy.deepcopy(schema)
        renames: dict[str, str] = {}
        for def_name, definition in schema.pop("$defs", {}).items():
            renames[def_name] = self._place(def_name, definition, prefix=name)
        schema = self._rewrite(schema, renames)
        for def_name in renames.values():
            self.schemas[def_name] = self._rewrite(self.schemas[def_name], renames)
        return self._place(name, schema, prefix="")

    def _place(self, name: str, schema: dict[str, Any], prefix: str) -> str:
        if name in self.schemas and self.schemas[name] != schema:
            name = f"{prefix}{name}"
        self.schemas[name] = schema
        return name

    def _rewrite(self, value: Any, renames: dict[str, str]) -> Any:
        if isinstance(value, dict):
            if isinstance(value.get("$ref"), str) and value["$ref"].startswith("#/$defs/"):
                target = renames.get(value["$ref"][len("#/$defs/") :], value["$ref"])
                return {**value, "$ref": f"#/components/schemas/{target}"}
            return {k: self._rewrite(v, renames) for k, v in value.items()}
        if isinstance(value, list):
            return [self._rewrite(v, renames) for v in value]
        return value


def _component_name(job_type: str) -> str:
    return "Trigger_" + "".join(c if c.isalnum() else "_" for c in job_type)


def _trigger_bodies(hoister: _Hoister) -> dict[str, Any]:
    """One body schema per job type: `jobType`, its parameters, and `options`."""
    options = hoister.add("JobOptions", JobOptions.model_json_schema(by_alias=True))
    variants = []
    for name, declared in job_types().items():
        params = declared.json_schema()
        body = {
            "type": "object",
            "title": name,
            "description": declared.description or f"Trigger a {name} job.",
            "properties": {
                "jobType": {"const": name},
                **params.get("properties", {}),
                "options": _ref(options),
            },
            "required": ["jobType", *params.get("required", [])],
            "additionalProperties": False,
        }
        if "$defs" in params:
            body["$defs"] = params["$defs"]
        variants.append(_ref(hoister.add(_component_name(name), body)))
    return {"oneOf": variants} if variants else {"type": "object"}


# --- operations ---------------------------------------------------------------------------

_QUEUE = {"name": "queue", "in": "path", "required": True,
          "schema": {"type": "string", "enum": list(settings.JOBYARD_QUEUES)}}  # fmt: skip
_JOB_ID = {"name": "jobId", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": ID_PATTERN}}  # fmt: skip


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_COMMON = (401, 403, 503)


def _operation(op_id: str, summary: str, ok: dict[str, Any], *, params: list | None = None,
               body: dict | None = None, errors: tuple = (), description: str = "",
               scope: str = READ, more: dict | None = None) -> dict[str, Any]:  # fmt: skip
    responses = {"200": ok, **(more or {})}
    for code in sorted({*_COMMON, *errors}):
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    responses = dict(sorted(responses.items()))
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "description": (description + f"\n\nNeeds a {scope} token (or a staff session).").strip(),
        "responses": responses,
        "x-scope": scope,
    }
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


_ERROR_WORDS = {400: "bad input", 401: "no valid token or staff session",
                403: "not allowed: a read token on a write endpoint, or not staff",
                404: "not found (queue, job)", 409: "conflicts with the job's state",
                413: "body over 1 MB", 415: "the body is not application/json",
                422: "a field is invalid: `fields` names each and why",
                503: "Redis or the database is unreachable"}  # fmt: skip


def _paths(trigger_body: dict[str, Any]) -> dict[str, Any]:
    job = _json(_ref("Job"), "the job")
    queue_op = {"parameters": [_QUEUE]}
    empty_body = {
        "required": False,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    simple = lambda props: _json(_object(props), "done")  # noqa: E731
    clean_schema = CleanRequest.model_json_schema(by_alias=True)
    return {
        "/api/admin/jobs/trigger": {
            "post": _operation(
                "triggerJob",
                "Enqueue a job of a declared type",
                _json(
                    _ref("TriggerResult"), "the job id already existed: that job, nothing created"
                ),
                body={"required": True, "content": {"application/json": {"schema": trigger_body}}},
                errors=(400, 409, 413, 415, 422),
                scope="write",
                more={"202": _json(_ref("TriggerResult"), "a new job: {jobId, queue, state}")},
                description="The body is `jobType`, the job type's parameters (camelCase) and "
                "`options` (delay ms, priority 1-10, jobId, attempts, backoff, timeout "
                "ms, removeOnComplete, removeOnFail). 202 `{jobId, queue, state}` for "
                "a new job; 200 with the existing job when `options.jobId` names one; "
                "400 for an unknown jobType, listing the known ones (`known`); 422 "
                "naming each invalid field. A paused queue accepts jobs.",
            )
        },
        "/api/admin/jobs/status": {
            "get": _operation(
                "jobsStatus",
                "Counts over every queue and the newest jobs, or one job",
                {
                    "description": "without jobId: Status; with jobId: that Job",
                    "content": {
                        "application/json": {"schema": {"oneOf": [_ref("Status"), _ref("Job")]}}
                    },
                },
                params=[
                    {
                        "name": "jobId",
                        "in": "query",
                        "required": False,
                        "description": "one job: looked up in every queue (in settings order) "
                        "unless `queue` says which",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "queue",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": list(settings.JOBYARD_QUEUES)},
                    },
                ],
                errors=(404,),
            )
        },
        "/api/v1/jobs/{queue}/{jobId}": {
            "parameters": [_QUEUE, _JOB_ID],
            "get": _operation("getJob", "One job", job, errors=(404,)),
            "delete": _operation(
                "removeJob",
                "Remove a job (any state but active)",
                simple(
                    {
                        "jobId": {"type": "string"},
                        "queue": {"type": "string"},
                        "removed": {"type": "boolean"},
                    }
                ),
                errors=(404, 409),
                scope="write",
            ),
        },
        "/api/v1/jobs/{queue}/{jobId}/retry": {
            "parameters": [_QUEUE, _JOB_ID],
            "post": _operation(
                "retryJob",
                "Retry a failed job with a fresh attempt budget",
                job,
                errors=(404, 409),
                scope="write",
            ),
        },
        "/api/v1/queues": {
            "get": _operation(
                "listQueues",
                "Every queue's metrics",
                _json(
                    _object(
                        {"queues": {"type": "object", "additionalProperties": _ref("QueueMetrics")}}
                    ),
                    "metrics by queue name",
                ),
            )
        },
        "/api/v1/queues/{queue}": {
            **queue_op,
            "get": _operation(
                "getQueue",
                "A queue: counts, recent jobs, schedules",
                _json(_ref("QueueDetail"), "the queue"),
                errors=(404,),
            ),
        },
        "/api/v1/queues/{queue}/stats": {
            **queue_op,
            "get": _operation(
                "queueStats", "Counts per state", _json(_ref("Counts"), "counts"), errors=(404,)
            ),
        },
        "/api/v1/queues/{queue}/jobs": {
            **queue_op,
            "get": _operation(
                "listQueueJobs",
                "A page of a queue's jobs (the dead-letter list: state=failed)",
                _json(_ref("JobPage"), "the page"),
                params=[
                    {
                        "name": "state",
                        "in": "query",
                        "required": False,
                        "description": "comma-separated states; all by default",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "start",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0, "default": 0},
                    },
                    {
                        "name": "end",
                        "in": "query",
                        "required": False,
                        "description": "inclusive; at most start + 999",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                errors=(404, 422),
            ),
        },
        "/api/v1/queues/{queue}/pause": {
            **queue_op,
            "post": _operation(
                "pauseQueue",
                "Pause: workers stop starting its jobs; it still accepts jobs",
                simple({"queue": {"type": "string"}, "paused": {"const": True}}),
                body=empty_body,
                errors=(404,),
                scope="write",
            ),
        },
        "/api/v1/queues/{queue}/resume": {
            **queue_op,
            "post": _operation(
                "resumeQueue",
                "Resume: parked jobs are sent, in order",
                simple(
                    {
                        "queue": {"type": "string"},
                        "paused": {"const": False},
                        "resumed": {"type": "integer"},
                    }
                ),
                body=empty_body,
                errors=(404,),
                scope="write",
            ),
        },
        "/api/v1/queues/{queue}/retry-failed": {
            **queue_op,
            "post": _operation(
                "retryFailed",
                "Retry every failed job of the queue",
                simple({"queue": {"type": "string"}, "retried": {"type": "integer"}}),
                body=empty_body,
                errors=(404,),
                scope="write",
            ),
        },
        "/api/v1/queues/{queue}/clean": {
            **queue_op,
            "post": _operation(
                "cleanQueue",
                "Remove old jobs of one state",
                simple(
                    {
                        "queue": {"type": "string"},
                        "state": {"type": "string"},
                        "removed": {"type": "integer"},
                        "jobIds": {"type": "array", "items": {"type": "string"}},
                    }
                ),
                body={"required": False, "content": {"application/json": {"schema": clean_schema}}},
                errors=(400, 404, 413, 415, 422),
                scope="write",
                description="Removes up to `limit` jobs in `state` that are older than `grace` "
                "ms (finishing time for completed/failed). Active jobs are never "
                "cleaned.",
            ),
        },
        "/api/v1/workers": {
            "get": _operation(
                "listWorkers",
                "Live workers",
                _json(_object({"workers": {"type": "array", "items": _ref("Worker")}}), "workers"),
            )
        },
        "/api/v1/job-types": {
            "get": _operation(
                "listJobTypes",
                "Declared job types and their parameter schemas",
                _json(
                    _object(
                        {
                            "jobTypes": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "name": {"type": "string"},
                                        "queue": {"type": "string"},
                                        "description": {"type": "string"},
                                        "parameters": {"type": "object"},
                                        "defaults": {"type": "object"},
                                    }
                                ),
                            }
                        }
                    ),
                    "job types",
                ),
            )
        },
        "/api/v1/events": {
            "get": _operation(
                "events",
                "Job events as server-sent events",
                {
                    "description": "an event stream: `event` is the job event (waiting, active, "
                    "progress, completed, failed, delayed, retrying, stalled, removed, "
                    "paused, resumed), `data` its JSON, `id` the position to resume "
                    "from; it ends with an `end` event after the server's max "
                    "lifetime (reconnect with Last-Event-ID)",
                    "content": {"text/event-stream": {"schema": _ref("Event")}},
                },
                params=[
                    {
                        "name": "queue",
                        "in": "query",
                        "required": False,
                        "description": "comma-separated queue names; every queue by default",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "resume after this event (the `id` of the last one seen)",
                        "schema": {"type": "string"},
                    },
                ],
                errors=(400, 404),
            )
        },
        "/api/v1/openapi.json": {
            "get": _operation("openapi", "This document", _json({"type": "object"}, "OpenAPI 3.1"))
        },
        "/api/v1/docs": {
            "get": _operation(
                "docs",
                "This document as a web page",
                {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
            )
        },
    }


def build_document() -> dict[str, Any]:
    schemas = _schemas()
    hoister = _Hoister(schemas)
    trigger_body = _trigger_bodies(hoister)
    hoister.add("CleanRequest", CleanRequest.model_json_schema(by_alias=True))
    paths = _paths(trigger_body)
    responses = {f"E{code}": _json(_ref("Error"), words) for code, words in _ERROR_WORDS.items()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Jobyard API",
            "version": "1",
            "description": "Background jobs: trigger, inspect and steer them. Authenticate "
            "with `Authorization: Bearer <token>` (`manage.py api_token create NAME --scope "
            "read|write`) or a logged-in staff session. Errors are "
            '`{"error": {"code", "message"}}`.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"sessionAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "an API token: jy_<prefix>_<secret>"},
                "sessionAuth": {"type": "apiKey", "in": "cookie",
                                "name": settings.SESSION_COOKIE_NAME,
                                "description": "a staff user's admin login; unsafe methods "
                                               "need the CSRF token (X-CSRFToken)"},
            },
        },
    }  # fmt: skip


@api_view({"GET": READ})
def document(request: HttpRequest) -> Any:
    return build_document()


_METHODS = ("get", "post", "put", "patch", "delete")


@api_view({"GET": READ})
def docs(request: HttpRequest) -> Any:
    doc = build_document()
    operations = []
    for path, item in doc["paths"].items():
        shared = item.get("parameters", [])
        for method in _METHODS:
            if method not in item:
                continue
            op = item[method]
            body = op.get("requestBody", {}).get("content", {})
            operations.append({
                "method": method.upper(), "path": path, "anchor": op["operationId"],
                "summary": op["summary"], "description": op.get("description", ""),
                "scope": op.get("x-scope", "read"),
                "parameters": [{**p, "schema": json.dumps(p.get("schema", {}))}
                               for p in [*shared, *op.get("parameters", [])]],
                "body": {ct: json.dumps(media.get("schema", {}), indent=2)
                         for ct, media in body.items()},
                "responses": [
                    {"status": status, "description": _describe(resp, doc)}
                    for status, resp in op["responses"].items()
                ],
            })  # fmt: skip
    types = [
        {"name": name, "queue": jt.queue, "description": jt.description,
         "schema": json.dumps(jt.json_schema(), indent=2)}
        for name, jt in job_types().items()
    ]  # fmt: skip
    schemas = {name: json.dumps(s, indent=2) for name, s in doc["components"]["schemas"].items()}
    return render(request, "jobyard_api/docs.html",
                  {"doc": doc, "operations": operations, "job_types": types,
                   "schemas": schemas})  # fmt: skip


def _describe(response: dict[str, Any], doc: dict[str, Any]) -> str:
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response.get("description", "")
