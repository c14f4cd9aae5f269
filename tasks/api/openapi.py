"""The OpenAPI 3.1 document (/api/v1/openapi.json) and its docs page (/api/v1/docs).

Nothing here restates a shape. Response schemas are generated from tasks.api.schemas, the
models every view answers through; request bodies from the request models (JobOptions,
CleanRequest) and from each job type's declaration (its parameters become a trigger body).
So the document, the views' output, the trigger's validation, the CLI and the admin form
all follow one declaration each. What is written here is the operations: paths, methods,
parameters, statuses and words. The docs page is rendered on the server from the same
document: no script and nothing fetched from elsewhere.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from tasks import job_types
from tasks.api import schemas as s
from tasks.api.base import READ, WRITE, api_view
from tasks.api.flows import FlowRequest
from tasks.api.views import CleanRequest, RecoverRequest
from tasks.options import ID_PATTERN, JobOptions
from tasks.states import EVENTS

#: The request bodies that are models of their own (job types add theirs).
REQUESTS: tuple[type[BaseModel], ...] = (JobOptions, CleanRequest, RecoverRequest, FlowRequest)

#: The apps' own paths (`tasks.api_paths`), each built with the document.
_APP_PATHS: list[Callable[[Any], dict[str, Any]]] = []


def api_paths(build: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """Add an app's paths to the document (call it in AppConfig.ready). `build(api)` is
    called on each build and returns `{path: path item}`, its operations made as the
    platform's own are: `api.op(...)`, `api.body(...)`, `api.content(...)`, with the
    platform's error responses, scopes and security; `api.component(name, schema)` names
    a shape of the app's (a JSON schema or a pydantic model) and returns its `$ref`, and
    `api.ref(name)` points at one of the platform's (`Job`, `Counts`). A path the document
    has already is an error, as is a component name taken by another shape."""
    if build not in _APP_PATHS:
        _APP_PATHS.append(build)
    return build


class _Untitled(GenerateJsonSchema):
    """Without the title pydantic gives each property (its name again)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _ref(name: str) -> dict[str, str]:
    return {"$ref": s.REF_TEMPLATE.format(model=name)}


@functools.cache
def model_schemas() -> tuple[dict[type[BaseModel], str], dict[str, Any]]:
    """(each model's component name, every component schema the models need), generated
    in one pass so that a model nested in several (Job, Counts) is one component."""
    refs, top = models_json_schema(
        [(m, "serialization") for m in s.RESPONSES] + [(m, "validation") for m in REQUESTS],
        by_alias=True,
        ref_template=s.REF_TEMPLATE,
        schema_generator=_Untitled,
    )
    names = {model: ref["$ref"].rsplit("/", 1)[1] for (model, _), ref in refs.items()}
    schemas = top["$defs"]
    # What an event's data holds: a ref pydantic cannot take from json_schema_extra.
    data = schemas[names[s.StreamMessage]]["properties"]["data"]
    data["contentSchema"] = {"oneOf": [_ref(names[m]) for m in s.STREAM_DATA]}
    return names, schemas


# --- request bodies of the job types ------------------------------------------------------


def _hoist(schemas: dict[str, Any], owner: str, schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` moved into components: a `#/$defs/...` ref would point at
    the document's root. A definition whose name is taken by a different schema becomes
    `{owner}_{name}`; refs are pointed at wherever each went."""
    defs = schema.pop("$defs", {})
    renames = {n: n if schemas.get(n, d) == d else f"{owner}_{n}" for n, d in defs.items()}

    def point(value: Any) -> Any:
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return {**value, **_ref(renames[ref.removeprefix("#/$defs/")])}
            return {k: point(v) for k, v in value.items()}
        if isinstance(value, list):
            return [point(v) for v in value]
        return value

    for name, definition in defs.items():
        schemas[renames[name]] = point(definition)
    return point(schema)


def _trigger_body(schemas: dict[str, Any], options: str) -> dict[str, Any]:
    """One body schema per job type: `jobType`, its parameters, and `options`."""
    variants = []
    for name, declared in job_types().items():
        params = declared.json_schema()
        component = "Trigger_" + "".join(c if c.isalnum() else "_" for c in name)
        while component in schemas:  # "a.b" and "a_b"
            component += "_"
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
            "$defs": params.get("$defs", {}),
        }
        schemas[component] = _hoist(schemas, component, body)
        variants.append(_ref(component))
    return {"oneOf": variants} if variants else {"type": "object"}


# --- operations ---------------------------------------------------------------------------

_QUEUE = {"name": "queue", "in": "path", "required": True,
          "schema": {"type": "string", "enum": list(settings.JOBYARD_QUEUES)}}  # fmt: skip
_JOB_ID = {"name": "jobId", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": ID_PATTERN}}  # fmt: skip
_COMMON = (401, 403, 503)
_ERROR_WORDS = {400: "bad input", 401: "no valid token or staff session",
                403: "not allowed: a read token on a write endpoint, or not staff",
                404: "not found (queue, job)", 409: "conflicts with the job's state",
                413: "body over 1 MB", 415: "the body is not application/json",
                422: "a field is invalid: `fields` names each and why",
                429: "this token (or staff user) has its event streams open; see Retry-After",
                503: "Redis or the database is unreachable; or (event streams) this server "
                     "process has its streams open, see Retry-After"}  # fmt: skip
#: Bodies that may be sent but are not read: pause, resume, retry-failed.
_EMPTY_BODY = {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    return {**param, "description": description} if description else param


class _Operations:
    """Builds operations whose bodies are models, named as the components name them."""

    def __init__(self, names: dict[type[BaseModel], str], trigger_body: dict[str, Any],
                 schemas: dict[str, Any] | None = None):  # fmt: skip
        self.names = names
        self.trigger_body = trigger_body
        self.schemas = schemas if schemas is not None else {}

    def component(self, name: str, schema: dict[str, Any] | type[BaseModel],
                  mode: str = "serialization") -> dict[str, str]:  # fmt: skip
        """An app's shape as a component (a model's nested ones too); its `$ref`."""
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            schema = _hoist(self.schemas, name, schema.model_json_schema(
                by_alias=True, mode=mode, schema_generator=_Untitled))  # fmt: skip
        if self.schemas.get(name, schema) != schema:
            raise ValueError(f"OpenAPI component {name!r} is taken by another schema")
        self.schemas[name] = schema
        return _ref(name)

    def ref(self, name: str) -> dict[str, str]:
        """The `$ref` of a platform component (`Job`, `Counts`, ...)."""
        if name not in self.schemas:
            raise KeyError(f"no OpenAPI component {name!r}")
        return _ref(name)

    def schema(self, target: type[BaseModel] | tuple | dict) -> dict[str, Any]:
        if isinstance(target, tuple):  # one of these models
            return {"oneOf": [self.schema(t) for t in target]}
        if isinstance(target, dict):
            return target
        return _ref(self.names[target])

    def content(self, target: Any, description: str, media: str = "application/json") -> dict:
        return {"description": description, "content": {media: {"schema": self.schema(target)}}}

    def op(self, op_id: str, summary: str, ok: Any, words: str, *, status: int = 200,
           scope: str = READ, errors: tuple[int, ...] = (), params: list | None = None,
           body: dict | None = None, description: str = "", more: dict | None = None,
           media: str = "application/json") -> dict[str, Any]:  # fmt: skip
        responses = {str(status): self.content(ok, words, media), **(more or {})}
        for code in {*_COMMON, *errors}:
            responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
        op: dict[str, Any] = {
            "operationId": op_id,
            "summary": summary,
            "description": (
                description + f"\n\nNeeds a {scope} token (or a staff session)."
            ).strip(),
            "responses": dict(sorted(responses.items())),
            "x-scope": scope,
        }
        if params:
            op["parameters"] = params
        if body:
            op["requestBody"] = body
        return op

    def body(self, target: Any, required: bool) -> dict[str, Any]:
        return {"required": required, "content": {"application/json": {"schema": self.schema(target)}}}  # fmt: skip

    def paths(self) -> dict[str, Any]:
        op, queue = self.op, {"parameters": [_QUEUE]}
        job_params = {"parameters": [_QUEUE, _JOB_ID]}
        return {
            "/api/admin/jobs/trigger": {"post": op(
                "triggerJob", "Enqueue a job of a declared type", s.TriggerCreated,
                "a new job: {jobId, queue, state}", status=202, scope=WRITE,
                errors=(400, 409, 413, 415, 422), body=self.body(self.trigger_body, True),
                more={"200": self.content(s.TriggerExisting, "the job id already existed: "
                                          "that job, nothing created")},
                description="The body is `jobType`, the job type's parameters (camelCase) and "
                "`options` (delay ms, priority 1-10, jobId, attempts, backoff, timeout ms, "
                "removeOnComplete, removeOnFail). 202 `{jobId, queue, state}` for a new job; "
                "200 with the existing job when `options.jobId` names one; 400 for an unknown "
                "jobType, listing the known ones (`known`); 422 naming each invalid field. "
                "A paused queue accepts jobs.")},
            "/api/admin/jobs/status": {"get": op(
                "jobsStatus", "Counts over every queue and the newest jobs, or one job",
                (s.Status, s.Job), "without jobId: Status; with jobId: that Job", errors=(404,),
                params=[_query("jobId", {"type": "string"}, "one job: looked up in every queue "
                               "(in settings order) unless `queue` says which"),
                        _query("queue", {"type": "string",
                                         "enum": list(settings.JOBYARD_QUEUES)})])},
            "/api/admin/jobs/{queue}": {**queue, "get": op(
                "adminQueue", "A queue: counts, recent jobs, schedules (the health "
                "platform's path; the same as GET /api/v1/queues/{queue})", s.QueueDetail,
                "the queue", errors=(404,))},
            "/api/jobs/metrics": {"get": op(
                "jobsMetrics", "Every queue's counts per state (the pricing engine's path)",
                s.QueueCountsByName, "counts by queue name")},
            "/api/v1/jobs/{queue}/stats": {**queue, "get": op(
                "jobQueueStats", "Counts per state (the API boilerplate's path; the same as "
                "GET /api/v1/queues/{queue}/stats)", s.Counts, "counts", errors=(404,),
                description="A job whose id is `stats` is read with GET "
                "/api/admin/jobs/status?jobId=stats&queue=...")},
            "/api/v1/jobs/{queue}/{jobId}": {
                **job_params,
                "get": op("getJob", "One job, with its parent and children in a flow",
                          s.JobDetail, "the job", errors=(404,)),
                "delete": op("removeJob", "Remove a job (any state but active)", s.JobRemoved,
                             "done", errors=(404, 409), scope=WRITE),
            },
            "/api/v1/flows": {"post": op(
                "createFlow", "Enqueue a flow: a parent that runs once its children completed",
                s.FlowCreated, "the flow's jobs as created: {created, flow}", status=202,
                scope=WRITE, errors=(409, 413, 415, 422), body=self.body(FlowRequest, True),
                more={"200": self.content(s.FlowExisting, "the root's jobId already existed: "
                                          "that job, nothing created")},
                description="The body is a tree: `{name, data, queue?, opts?, children: [...]}`, "
                "children in any queues, nested. It is written all at once or not at all. A "
                "parent waits in `waiting-children` until every child completed; a child's "
                "final failure fails it, naming the child, unless the child's opts say "
                "`ignoreDependencyOnFailure` (or `failParentOnFailure: false`). 422 names each "
                "bad field by its path (`children[2].opts.attempts`); 409 when a job id other "
                "than the root's exists. See docs/flows.md.")},
            "/api/v1/jobs/{queue}/{jobId}/retry": {**job_params, "post": op(
                "retryJob", "Retry a failed job with a fresh attempt budget", s.Job, "the job",
                errors=(404, 409), scope=WRITE)},
            "/api/v1/jobs/{queue}/{jobId}/logs": {**job_params, "get": op(
                "getJobLogs", "A page of the job's log lines (job.log), oldest first", s.JobLogs,
                "the lines and how many the job holds", errors=(404, 422),
                params=[_query("start", {"type": "integer", "minimum": 0, "default": 0}),
                        _query("end", {"type": "integer", "minimum": -1, "default": -1},
                               "inclusive; -1 is the last line; a page holds 1,000 at most")])},
            "/api/v1/jobs/{queue}/{jobId}/cancel": {**job_params, "post": op(
                "cancelJob", "Cancel a job: remove it if it has not started, stop it if it runs",
                s.JobCancelled, "removed: it had not started (waiting, paused or delayed)",
                errors=(404, 409), scope=WRITE, body=_EMPTY_BODY,
                more={"202": self.content(s.JobCancelled, "cancelling: the running job was "
                                          "asked to stop")},
                description="A running job sees `job.cancelled` and JobCancelled at its next "
                "progress or log call; a job still running after the grace period "
                "(JOBYARD_CANCEL_GRACE_MS, 5 s) has its process killed (prefork pool). It "
                "then fails with failedReason \"cancelled\" and is not retried. 409 when the "
                "job has finished.")},
            "/api/v1/jobs/{queue}/{jobId}/promote": {**job_params, "post": op(
                "promoteJob", "Run a delayed job now", s.Job, "the job, now waiting",
                errors=(404, 409), scope=WRITE, body=_EMPTY_BODY,
                description="A delayed job (a delay or a retry back-off) becomes waiting and "
                "is sent to the workers at once. 409 when it is not delayed.")},
            "/api/v1/queues": {"get": op(
                "listQueues", "Every queue's metrics", s.QueueList, "metrics by queue name")},
            "/api/v1/queues/{queue}": {**queue, "get": op(
                "getQueue", "A queue: counts, recent jobs, schedules", s.QueueDetail,
                "the queue", errors=(404,))},
            "/api/v1/queues/{queue}/stats": {**queue, "get": op(
                "queueStats", "Counts per state", s.Counts, "counts", errors=(404,))},
            "/api/v1/queues/{queue}/jobs": {**queue, "get": op(
                "listQueueJobs", "A page of a queue's jobs (the dead-letter list: state=failed)",
                s.JobPage, "the page", errors=(404, 422),
                params=[_query("state", {"type": "string"}, "comma-separated states; all by "
                               "default"),
                        _query("start", {"type": "integer", "minimum": 0, "default": 0}),
                        _query("end", {"type": "integer", "minimum": 0},
                               "inclusive; at most start + 999")])},
            "/api/v1/queues/{queue}/pause": {**queue, "post": op(
                "pauseQueue", "Pause: workers stop starting its jobs; it still accepts jobs",
                s.QueuePaused, "done", body=_EMPTY_BODY, errors=(404,), scope=WRITE)},
            "/api/v1/queues/{queue}/resume": {**queue, "post": op(
                "resumeQueue", "Resume: parked jobs are sent, in order", s.QueueResumed, "done",
                body=_EMPTY_BODY, errors=(404,), scope=WRITE)},
            "/api/v1/queues/{queue}/retry-failed": {**queue, "post": op(
                "retryFailed", "Retry every failed job of the queue", s.QueueRetried, "done",
                body=_EMPTY_BODY, errors=(404,), scope=WRITE)},
            "/api/v1/queues/{queue}/clean": {**queue, "post": op(
                "cleanQueue", "Remove old jobs of one state", s.QueueCleaned, "done",
                body=self.body(CleanRequest, False), errors=(400, 404, 413, 415, 422),
                scope=WRITE,
                description="Removes up to `limit` jobs in `state` that are older than `grace` "
                "ms (finishing time for completed/failed). Active jobs are never cleaned: "
                "`state: active` is a 422 pointing at recover-stalled.")},
            "/api/v1/queues/{queue}/recover-stalled": {**queue, "post": op(
                "recoverStalled", "Fix stuck active jobs: those whose worker's lock expired "
                "are sent again (or failed with `action: fail`); live ones are left alone",
                s.QueueRecovered, "done", body=self.body(RecoverRequest, False),
                errors=(400, 404, 413, 415, 422), scope=WRITE)},
            "/api/v1/workers": {"get": op("listWorkers", "Live workers", s.WorkerList,
                                          "workers")},
            "/api/v1/job-types": {"get": op(
                "listJobTypes", "Declared job types and their parameter schemas", s.JobTypeList,
                "job types")},
            "/api/v1/events": {"get": op(
                "events", "Job events as server-sent events", s.StreamMessage,
                f"an event stream: `event` is the job event ({', '.join(EVENTS)}), `data` its "
                "JSON, `id` the position to resume from; it ends with an `end` event after the "
                "server's max lifetime (reconnect with Last-Event-ID)",
                errors=(400, 404, 429), media="text/event-stream",
                params=[_query("queue", {"type": "string"}, "comma-separated queue names; every "
                               "queue by default"),
                        {"name": "Last-Event-ID", "in": "header", "required": False,
                         "description": "resume after this event (the `id` of the last one seen)",
                         "schema": {"type": "string"}}])},
            "/metrics": {"get": op(
                "metrics", "Prometheus metrics: queues, job counters and timings, workers, "
                "recorder, beat, Redis memory", {"type": "string"},
                "Prometheus text format 0.0.4", media="text/plain",
                description="Read from the registry at each scrape (docs/operations.md, "
                "\"Metrics\"). With METRICS_AUTH=none it answers without credentials.")},
            "/api/v1/openapi.json": {"get": op(
                "openapi", "This document", {"type": "object"}, "OpenAPI 3.1")},
            "/api/v1/docs": {"get": op(
                "docs", "This document as a web page", {"type": "string"}, "HTML",
                media="text/html")},
        }  # fmt: skip


def build_document() -> dict[str, Any]:
    names, generated = model_schemas()
    schemas = copy.deepcopy(generated)
    trigger_body = _trigger_body(schemas, names[JobOptions])
    operations = _Operations(names, trigger_body, schemas)
    paths = operations.paths()
    for build in _APP_PATHS:
        for path, item in build(operations).items():
            if path in paths:
                raise ValueError(f"OpenAPI path {path} is declared twice")
            paths[path] = item
    error = _ref(names[s.Error])
    responses = {
        f"E{code}": {"description": words, "content": {"application/json": {"schema": error}}}
        for code, words in _ERROR_WORDS.items()
    }
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
            "schemas": dict(sorted(schemas.items())),
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
def document(request: HttpRequest) -> HttpResponse:
    return JsonResponse(build_document())


_METHODS = ("get", "post", "put", "patch", "delete")


@api_view({"GET": READ})
def docs(request: HttpRequest) -> HttpResponse:
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
    schemas = {name: json.dumps(schema, indent=2)
               for name, schema in doc["components"]["schemas"].items()}  # fmt: skip
    return render(request, "jobyard_api/docs.html",
                  {"doc": doc, "operations": operations, "job_types": types,
                   "schemas": schemas})  # fmt: skip


def _describe(response: dict[str, Any], doc: dict[str, Any]) -> str:
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response.get("description", "")
