"""A queue's groups over HTTP (docs/api.md, "Groups"): counts, pause/resume, limits.

Its paths join the OpenAPI document through `api_paths` (ApiConfig.ready), as an app's do,
and its response models are the document's components: one home for each shape.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tasks import InvalidJobOptions, Queue
from tasks.api.base import READ, WRITE, api_view, parse_model, read_json
from tasks.api.errors import ApiError
from tasks.api.schemas import ApiModel, respond
from tasks.options import ID_PATTERN, MAX_DELAY_MS, check_group


class RateLimit(ApiModel):
    max: int = Field(description="jobs started at most per `duration`; 0: no limit")
    duration: int = Field(description="milliseconds")


class GroupLimits(ApiModel):
    concurrency: int | None = Field(description="active jobs per group at once; null: none")
    rate_limit: RateLimit | None


class Group(ApiModel):
    group: str
    waiting: int
    active: int
    paused: bool
    concurrency: int | None = Field(description="its own limit; null: the queue's default")
    rate_limit: RateLimit | None = Field(description="its own; null: the queue's default")


class QueueGroups(ApiModel):
    queue: str
    defaults: GroupLimits
    groups: list[Group]


class GroupPaused(ApiModel):
    queue: str
    group: str
    paused: bool


class _Request(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, strict=True
    )


class RateLimitRequest(_Request):
    max: int = Field(ge=0, le=1_000_000)
    duration: int = Field(ge=1, le=MAX_DELAY_MS, description="milliseconds")


class LimitsRequest(_Request):
    """The limits, replacing the ones set: a key left out (or null) clears that limit."""

    concurrency: int | None = Field(default=None, ge=0, le=100_000)
    rate_limit: RateLimitRequest | None = None


def _group(group: str) -> str:
    """The path's group name, or a 422 naming the field."""
    message = f"must match {ID_PATTERN}"
    try:
        return check_group(group)
    except InvalidJobOptions:
        raise ApiError(422, "invalid_request", f"group: {message}",
                       fields=[{"field": "group", "message": message}]) from None  # fmt: skip


def _rate(rate: tuple[int, int] | None) -> dict[str, int] | None:
    return None if rate is None else {"max": rate[0], "duration": rate[1]}


def _groups(queue: Queue, names: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    info = queue.groups(names)
    defaults = info["defaults"]
    return {
        "queue": queue.name,
        "defaults": {"concurrency": defaults["concurrency"],
                     "rateLimit": _rate(defaults["rate_limit"])},
        "groups": [
            {"group": g["group"], "waiting": g["waiting"], "active": g["active"],
             "paused": g["paused"], "concurrency": g["concurrency"],
             "rateLimit": _rate(g["rate_limit"])}
            for g in info["groups"]
        ],
    }  # fmt: skip


@api_view({"GET": READ})
def groups(request: HttpRequest, queue: str) -> HttpResponse:
    """Every group of the queue with jobs or settings: waiting, active, paused, limits."""
    return respond(QueueGroups, _groups(Queue(queue)))


def _set_limits(request: HttpRequest, queue: Queue, group: str | None) -> HttpResponse:
    limits = parse_model(LimitsRequest, read_json(request, required=False))
    rate = limits.rate_limit
    queue.set_group_limits(group, concurrency=limits.concurrency,
                           rate_limit=(rate.max, rate.duration) if rate else None)  # fmt: skip
    return respond(QueueGroups, _groups(queue, [group] if group else []))


@api_view({"POST": WRITE})
def default_limits(request: HttpRequest, queue: str) -> HttpResponse:
    """Every group's default limits in this queue."""
    return _set_limits(request, Queue(queue), None)


@api_view({"POST": WRITE})
def group_limits(request: HttpRequest, queue: str, group: str) -> HttpResponse:
    """One group's own limits, over the queue's defaults."""
    return _set_limits(request, Queue(queue), _group(group))


@api_view({"POST": WRITE})
def group_pause(request: HttpRequest, queue: str, group: str) -> HttpResponse:
    Queue(queue).pause_group(_group(group))
    return respond(GroupPaused, {"queue": queue, "group": group, "paused": True})


@api_view({"POST": WRITE})
def group_resume(request: HttpRequest, queue: str, group: str) -> HttpResponse:
    Queue(queue).resume_group(_group(group))
    return respond(GroupPaused, {"queue": queue, "group": group, "paused": False})


def paths(api: Any) -> dict[str, Any]:
    """The groups' operations in the OpenAPI document."""
    listing = api.component("QueueGroups", QueueGroups)
    paused = api.component("GroupPaused", GroupPaused)
    limits = api.component("GroupLimitsRequest", LimitsRequest, mode="validation")
    queue = {"name": "queue", "in": "path", "required": True,
             "schema": {"type": "string", "enum": list(settings.JOBYARD_QUEUES)}}  # fmt: skip
    group = {"name": "group", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": ID_PATTERN}}  # fmt: skip
    body = {"required": False, "content": {"application/json": {"schema": limits}}}
    empty = {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}
    both = {"parameters": [queue, group]}
    return {
        "/api/v1/queues/{queue}/groups": {"parameters": [queue], "get": api.op(
            "queueGroups", "A queue's groups: waiting and active counts, paused, limits",
            listing, "the groups", errors=(404,),
            description="docs/jobs.md, \"Groups\". Every group with waiting or active jobs, "
            "or settings of its own; `defaults` are the queue's limits for every group.")},
        "/api/v1/queues/{queue}/groups/limits": {"parameters": [queue], "post": api.op(
            "setGroupDefaults", "Every group's default limits in this queue", listing,
            "the queue's groups, with the new defaults", scope=WRITE, body=body,
            errors=(400, 404, 413, 415, 422),
            description="`concurrency`: active jobs per group at once across all workers; "
            "`rateLimit {max, duration}`: jobs started per group per `duration` ms. A key "
            "left out or null clears that limit.")},
        "/api/v1/queues/{queue}/groups/{group}/limits": {**both, "post": api.op(
            "setGroupLimits", "One group's own limits (over the queue's defaults)", listing,
            "that group", scope=WRITE, body=body, errors=(400, 404, 413, 415, 422),
            description="As the defaults; a limit cleared here falls back to the queue's "
            "default, and 0 means no limit whatever the default.")},
        "/api/v1/queues/{queue}/groups/{group}/pause": {**both, "post": api.op(
            "pauseGroup", "Pause one group: workers start none of its jobs (kept in Redis)",
            paused, "done", scope=WRITE, body=empty, errors=(404, 422))},
        "/api/v1/queues/{queue}/groups/{group}/resume": {**both, "post": api.op(
            "resumeGroup", "Resume one group", paused, "done", scope=WRITE, body=empty,
            errors=(404, 422))},
    }  # fmt: skip
