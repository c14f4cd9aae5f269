"""POST /api/v1/flows: a flow (a parent and its children, docs/flows.md) in one request.

The tree is validated and written by `tasks.enqueue_flow`, as from Python and the CLI;
`FlowRequest` only describes the body for the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tasks import enqueue_flow
from tasks.api import schemas
from tasks.api.base import WRITE, api_view, read_json
from tasks.api.schemas import respond
from tasks.options import JobOptions


class FlowOptions(JobOptions):
    """A node's options: the enqueue options, and a child's options (BullMQ's)."""

    ignore_dependency_on_failure: bool = Field(
        default=False, description="a child: its failure is recorded on the parent, which runs"
    )
    fail_parent_on_failure: bool = Field(
        default=True, description="a child: its failure fails the parent (the default)"
    )


class FlowRequest(BaseModel):
    """A node of a flow: a job and the children it waits for."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    name: str = Field(description="the job type")
    data: dict[str, Any] = Field(default_factory=dict, description="its parameters")
    queue: str | None = Field(default=None, description="if given, the job type's queue")
    opts: FlowOptions | None = None
    children: list[FlowRequest] = Field(
        default_factory=list, description="in any queues; a node with children waits for them"
    )


@transaction.non_atomic_requests
@api_view({"POST": WRITE})
def flows(request: HttpRequest) -> HttpResponse:
    """202 with the flow as created; 200 with the existing root when its jobId exists; 422
    naming each bad field by its path in the tree; 409 when another job's id exists."""
    node = enqueue_flow(read_json(request))
    if not node.created:
        return respond(schemas.FlowExisting, {"created": False, "job": node.job.to_dict()})
    return respond(schemas.FlowCreated, {"created": True, "flow": node.to_dict()}, 202)
