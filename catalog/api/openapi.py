"""The catalog's paths in the platform's OpenAPI document (/api/v1/openapi.json), added
with `tasks.api_paths` in CatalogConfig.ready. The shapes are the views' own answers
(catalog/api/*.py), written out here as JSON schemas; tests/api/test_fuzz.py checks every
answer against them, so the two cannot drift apart unnoticed."""

from __future__ import annotations

from typing import Any

from catalog.api.comets import MAX_PAGE
from catalog.imports.service import NAME_PATTERN, VERSION_PATTERN
from catalog.jobs.aggregation import AggregateDailyParams
from tasks import API_READ, API_WRITE

MS = {"type": ["integer", "null"], "description": "milliseconds since the epoch (UTC)"}
NULLABLE_TEXT = {"type": ["string", "null"]}
NULLABLE_NUMBER = {"type": ["number", "null"]}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    return {**schema, "description": description} if description else schema


COMET = _object({
    "id": {"type": "integer"}, "cobsId": {"type": ["integer", "null"]},
    "name": {"type": "string", "description": "the designation: C/2023 A3, 12P"},
    "fullname": {"type": "string"}, "mpcName": {"type": "string"},
    "icqName": {"type": "string"}, "type": {"type": "string"},
    "component": {"type": "string"}, "currentMagnitude": NULLABLE_NUMBER,
    "perihelionDate": NULLABLE_TIME, "perihelionMagnitude": NULLABLE_NUMBER,
    "peakMagnitude": NULLABLE_NUMBER, "peakDate": NULLABLE_TIME,
    "isObserved": {"type": "boolean"}, "isActive": {"type": "boolean"},
    "firstSeen": NULLABLE_TIME, "lastSeen": NULLABLE_TIME, "source": {"type": "string"},
})  # fmt: skip
STATUS = {"type": "string", "enum": ["pending", "running", "completed", "failed"]}
IMPORT_BATCH = _object({
    "batchId": {"type": "integer"}, "jobId": {"type": "string"},
    "tenantId": {"type": "string"}, "dataset": {"type": "string"},
    "versionTag": {"type": "string"}, "source": {"type": "string", "enum": ["csv", "json", "url"]},
    "format": {"type": "string", "enum": ["csv", "json"]}, "status": STATUS,
    "rowsTotal": {"type": "integer"}, "rowsImported": {"type": "integer"},
    "rowsFailed": {"type": "integer"}, "failedReason": NULLABLE_TEXT,
    "createdAt": MS, "startedAt": MS, "finishedAt": MS,
})  # fmt: skip
IMPORT_STARTED = _object({
    "jobId": {"type": "string"}, "batchId": {"type": "integer"}, "status": STATUS,
    "created": {"type": "boolean", "description": "false: that (tenant, dataset, version) "
                "existed, nothing was stored"},
})  # fmt: skip
NAMES = {
    "tenantId": {"type": "string", "pattern": NAME_PATTERN},
    "versionTag": {"type": "string", "pattern": VERSION_PATTERN},
    "dataset": {"type": "string", "pattern": NAME_PATTERN, "default": "observations"},
    "format": {"type": ["string", "null"], "enum": ["csv", "json", None],
               "description": "from the file's extension when left out"},
}  # fmt: skip
REPORT = _object({
    "id": {"type": "integer"}, "reportType": {"type": "string"},
    "format": {"type": "string", "enum": ["csv", "pdf"]}, "params": {"type": "object"},
    "userId": {"type": ["integer", "null"]}, "status": STATUS,
    "rows": {"type": "integer"}, "size": {"type": "integer"}, "jobId": {"type": "string"},
    "failedReason": NULLABLE_TEXT, "createdAt": MS, "finishedAt": MS,
    "file": {"type": ["string", "null"], "description": "the download's path, once completed"},
})  # fmt: skip


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 0}}  # fmt: skip


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def paths(api: Any) -> dict[str, Any]:
    """The catalog's operations: comets, imports, reports, aggregate-daily."""
    comet = api.component("CatalogComet", COMET)
    batch = api.component("CatalogImportBatch", IMPORT_BATCH)
    started = api.component("CatalogImportStarted", IMPORT_STARTED)
    report = api.component("CatalogReport", REPORT)
    aggregate = api.component("AggregateDailyRequest", AggregateDailyParams, mode="validation")
    job = api.ref("Job")
    upload = {"type": "object", "properties": {**NAMES, "file": {
        "type": "string", "format": "binary", "description": "the dataset, CSV or JSON"}},
        "required": ["tenantId", "versionTag", "file"]}  # fmt: skip
    by_url = {"type": "object", "properties": {**NAMES, "url": {
        "type": "string", "pattern": "^https?://", "description": "downloaded by the job"}},
        "required": ["tenantId", "versionTag", "url"], "additionalProperties": False}  # fmt: skip
    queued = api.component("AggregateDailyQueued", _object({
        "jobId": {"type": "string"}, "queue": {"type": "string"},
        "state": {"type": ["string", "null"]}}))  # fmt: skip
    recent = {"type": "array", "items": job}
    overview = api.component("AggregateDailyOverview", _object({
        "queue": {"type": "string"}, "counts": api.ref("Counts"),
        "recent": _object({"completed": recent, "failed": recent, "active": recent}),
        "scheduled": {"type": "array", "items": _object({
            "key": {"type": "string"}, "pattern": {"type": "string"},
            "next": {"type": ["integer", "null"], "description": "epoch ms"},
            "enabled": {"type": "boolean"}})},
    }))  # fmt: skip
    batch_id, report_id = _path_id("batchId"), _path_id("reportId")
    return {
        "/api/v1/catalog/comets": {"get": api.op(
            "catalogComets", "Comets, brightest first, 50 a page",
            api.component("CatalogCometPage", _object({
                "count": {"type": "integer"}, "page": {"type": "integer"},
                "pages": {"type": "integer"}, "pageSize": {"type": "integer"},
                "comets": {"type": "array", "items": comet}})),
            "a page of comets (unknown magnitudes last)", scope=API_READ, errors=(400,),
            params=[_query("maxMagnitude", {"type": "number"}, "current magnitude known and "
                           "at most this"),
                    _query("active", {"type": "string", "enum": ["true", "false", "1", "0"]},
                           "only active (or inactive) comets"),
                    _query("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                           "from 1")],
            description="docs/catalog.md. A bad value is a 400 `invalid_query` naming the "
            "field in `fields`.")},
        "/api/v1/catalog/imports": {"post": api.op(
            "catalogImport", "Import a dataset of observations: an upload or a URL",
            started, "a new batch, its ingest-dataset job enqueued", status=202,
            scope=API_WRITE, errors=(400, 413, 415, 422),
            body={"required": True, "content": {"multipart/form-data": {"schema": upload},
                                                "application/json": {"schema": by_url}}},
            more={"200": api.content(started, "that (tenant, dataset, version) exists: its "
                                     "batch, created false, nothing stored")},
            description="docs/imports.md. 413 `upload_too_large` past CATALOG_MAX_UPLOAD_BYTES; "
            "422 `invalid_request` naming each bad field.")},
        "/api/v1/catalog/imports/{batchId}": {"parameters": [batch_id], "get": api.op(
            "catalogImportBatch", "An import batch: status and counts", batch,
            "the batch", scope=API_READ, errors=(404,))},
        "/api/v1/catalog/imports/{batchId}/errors.csv": {"parameters": [batch_id], "get": api.op(
            "catalogImportErrors", "An import batch's row errors as CSV",
            {"type": "string"}, "line,field,message", scope=API_READ, errors=(404,),
            media="text/csv")},
        "/api/v1/reports/{reportId}": {"parameters": [report_id], "get": api.op(
            "report", "A report: status, rows, size, its file's path", report, "the report",
            scope=API_READ, errors=(404,),
            description="docs/reports.md. Its owner (a token naming them) or staff only; "
            "anyone else gets 404 `report_not_found`.")},
        "/api/v1/reports/{reportId}/file": {"parameters": [report_id], "get": {
            **api.op("reportFile", "A completed report's file", {"type": "string",
                     "format": "binary"}, "the CSV", scope=API_READ, errors=(404, 409),
                     media="text/csv"),
        }},
        "/api/admin/jobs/aggregate-daily": {
            "post": api.op(
                "aggregateDaily", "Aggregate the job archive per day (aggregate-daily)",
                queued, "the job: {jobId, queue, state}", status=202, scope=API_WRITE,
                errors=(400, 413, 415, 422), body=api.body(aggregate, False),
                description="docs/aggregation.md. A bad range is a 422 naming the field."),
            "get": api.op(
                "aggregateDailyOverview", "The aggregate-daily jobs and schedule", overview,
                "its queue's counts, its recent jobs, its schedules", scope=API_READ),
        },
    }  # fmt: skip
