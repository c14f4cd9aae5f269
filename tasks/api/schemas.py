"""The JSON bodies the API answers with, one model each: the one home of their shapes.

Every view answers through `respond(Model, payload)`: the payload is validated by its model
(strict, no extra keys) and written out by the model, and the OpenAPI document's response
schemas are generated from the same models (tasks.api.openapi). A key added to
Job.to_dict(), to the metrics or to a worker's dict without its field here is a 500 with
the validation error in the log, never a silent drift from the document.

Field names are snake_case; the keys, as sent, are their camelCase aliases. A field whose
key is sent only sometimes is `optional()`: absent from the output unless the payload has it.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from django.http import HttpResponse
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

from tasks.options import JobOptions
from tasks.states import CLEANABLE, EVENTS, STATES

State = Literal[STATES]  # type: ignore[valid-type]
#: Where a JSON Schema `$ref` points: the OpenAPI document's components.
REF_TEMPLATE = "#/components/schemas/{model}"
#: An event stream's position is `queue=streamId` per queue, comma-separated (sse.py).
QUEUE_NAME, STREAM_ID = r"[A-Za-z0-9_.\-]+", r"\d+-\d+"
_CURSOR = rf"{QUEUE_NAME}={STREAM_ID}"


def respond(model: type[BaseModel], payload: Any, status: int = 200) -> HttpResponse:
    """`payload` as JSON, checked by `model`: a ValidationError (a bug, so a 500) when it
    has a key the model lacks, lacks one it requires, or holds a value of another type."""
    return HttpResponse(dump(model, payload), status=status, content_type="application/json")


def dump(model: type[BaseModel], payload: Any) -> str:
    """`payload` validated by `model` and serialised by it, in one pass each."""
    checked = model.model_validate(payload, strict=True)
    return checked.model_dump_json(by_alias=True, exclude_unset=_sparse(model))


@functools.cache
def _sparse(model: type[BaseModel]) -> bool:
    """Whether `model` or one it nests has a key that may be absent: then only the keys
    the payload has are written (exclude_unset, which costs a third more to write)."""

    def walk(node: Any) -> bool:
        if isinstance(node, list):
            return any(walk(n) for n in node)
        if not isinstance(node, dict):
            return False
        if set(node.get("properties", ())) - set(node.get("required", ())):
            return True
        return any(walk(n) for n in node.values())

    return walk(model.model_json_schema(mode="serialization"))


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def optional(description: str | None = None, **more: Any) -> Any:
    """A key sent only when there is something to say: never null, and not required."""
    return Field(default=None, json_schema_extra=_no_default, description=description, **more)


class ApiModel(BaseModel):
    """Keys by alias only (camelCase): a snake_case key in a payload is an extra, refused."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel)


# --- errors -------------------------------------------------------------------------------


class FieldError(ApiModel):
    field: str
    message: str


class ErrorDetail(ApiModel):
    code: str
    message: str
    fields: list[FieldError] = optional("each field at fault and why (422)")
    known: list[str] = optional("the known job types (400) or queues (404)")
    got: str = optional("the content type sent (415)")


class Error(ApiModel):
    error: ErrorDetail


# --- jobs ---------------------------------------------------------------------------------


class JobTimestamps(ApiModel):
    """Milliseconds since the epoch."""

    created_at: int | None
    processed_on: int | None
    finished_on: int | None
    delay_until: int | None


class Job(ApiModel):
    id: str
    name: str = Field(description="the job type")
    queue: str
    state: State
    progress: Any = Field(description="a number 0-100 or a JSON object")
    data: dict[str, Any] = Field(description="the job's parameters (snake_case)")
    opts: dict[str, Any]
    returnvalue: Any = Field(description="what the job returned (any JSON)")
    attempts_made: int
    attempts: int
    failed_reason: str | None
    stacktrace: list[str]
    priority: int | None
    worker: str | None
    stalled_count: int
    schedule: str | None = Field(description="the schedule whose run this is")
    timestamps: JobTimestamps


# --- flows (tasks.flows) -------------------------------------------------------------------


class JobRef(ApiModel):
    """Another job of the flow: `name` and `state` are null once the registry forgot it
    (retention, removal)."""

    queue: str
    id: str
    name: str | None
    state: str | None


class FlowChild(JobRef):
    dependency: Literal["pending", "processed", "failed"] = Field(
        description="pending: the parent waits for it; processed: it completed and its value "
        "is kept with the parent; failed: it failed for good (ignored, or it failed the parent)"
    )


class JobDetail(Job):
    """One job, with its place in a flow."""

    parent: JobRef | None = Field(description="a flow's child: its parent")
    children: list[FlowChild] = Field(description="a flow's parent: its children")


class FlowNode(ApiModel):
    id: str
    queue: str
    name: str
    state: State
    children: list[FlowNode]


class FlowCreated(ApiModel):
    """A new flow (202): every job as created, the root first."""

    created: Literal[True]
    flow: FlowNode


class FlowExisting(ApiModel):
    """The root's `opts.jobId` names a job that exists (200): that job; nothing was created."""

    created: Literal[False]
    job: Job


#: Jobs per state, one field per state of tasks.states.
Counts = create_model(
    "Counts",
    __base__=ApiModel,
    __doc__="Jobs per state.",
    # `waiting-children` is no identifier: its field is waiting_children, sent as the state.
    **{state.replace("-", "_"): (int, Field(ge=0, alias=state)) for state in STATES},  # type: ignore[call-overload]
)


class Status(ApiModel):
    queue_stats: Counts = Field(description="summed over the queues")  # type: ignore[valid-type]
    queues: dict[str, Counts]  # type: ignore[valid-type]
    recent_jobs: list[Job]


class TriggerCreated(ApiModel):
    """A new job (202)."""

    job_id: str
    queue: str
    state: State
    created: Literal[True]


class TriggerExisting(ApiModel):
    """`options.jobId` named a job that exists (200): that job; nothing was created."""

    job_id: str
    queue: str
    state: State
    created: Literal[False]
    job: Job


class JobRemoved(ApiModel):
    job_id: str
    queue: str
    removed: bool


class JobLogs(ApiModel):
    """A page of a job's log lines (as BullMQ's getJobLogs)."""

    logs: list[str] = Field(description="the lines start..end, oldest first")
    count: int = Field(ge=0, description="how many lines the job holds")


class JobCancelled(ApiModel):
    job_id: str
    queue: str
    cancelled: Literal["removed", "cancelling"] = Field(
        description="removed: it had not started; cancelling: it runs and was asked to stop"
    )
    cancel_requested_at: int | None = Field(
        description="cancelling: when the cancel was asked (ms, the registry's clock)"
    )
    job: Job | None = Field(description="cancelling: the running job")


class JobPage(ApiModel):
    queue: str
    states: list[State]
    start: int
    end: int
    jobs: list[Job]


# --- queues -------------------------------------------------------------------------------


class Timing(ApiModel):
    mean: float | None
    p95: float | None
    samples: int


class Minute(ApiModel):
    minute: int = Field(description="its start, in seconds since the epoch")
    completed: int
    failed: int
    retried: int


class QueueMetrics(ApiModel):
    queue: str
    paused: bool
    counts: Counts  # type: ignore[valid-type]
    completed_per_minute: float
    failed_per_minute: float
    processed_per_minute: float
    failure_rate: float = Field(description="failed / finished, last hour")
    retried_per_minute: float = Field(description="failed attempts retried, trailing 60 s")
    attempt_failure_rate: float = Field(
        description="(failed + retried) / (completed + failed + retried) attempts, last hour"
    )
    processing_ms: Timing
    waiting_ms: Timing
    workers: int
    utilization: float | None = Field(description="running / concurrency")
    last_hour: list[Minute]


class QueueList(ApiModel):
    queues: dict[str, QueueMetrics] = Field(description="metrics by queue name")


class Schedule(ApiModel):
    key: str
    job_type: str
    queue: str | None
    pattern: str = Field(description="cron fields or interval")
    timezone: str | None
    next: int | None = Field(description="epoch ms of the next run; null when none")
    enabled: bool
    last_run_at: int | None = Field(description="epoch ms")
    last_job_id: str = Field(description="empty until it ran")
    last_error: str = Field(
        description="empty unless its last run failed to enqueue or the schedule is broken"
    )


class RecentJobs(ApiModel):
    completed: list[Job]
    failed: list[Job]
    active: list[Job]


class QueueDetail(ApiModel):
    name: str
    paused: bool
    counts: Counts  # type: ignore[valid-type]
    recent: RecentJobs
    scheduled: list[Schedule]


class QueuePaused(ApiModel):
    queue: str
    paused: Literal[True]


class QueueResumed(ApiModel):
    queue: str
    paused: Literal[False]
    resumed: int = Field(description="parked jobs sent to workers")


class QueueRetried(ApiModel):
    queue: str
    retried: int


class QueueCleaned(ApiModel):
    queue: str
    state: Literal[CLEANABLE]  # type: ignore[valid-type]
    removed: int
    job_ids: list[str]


class QueueRecovered(ApiModel):
    queue: str
    action: Literal["requeue", "fail"]
    recovered: int
    job_ids: list[str]


class QueueCountsByName(ApiModel):
    """The pricing engine's `GET /api/jobs/metrics`."""

    metrics: dict[str, Counts]  # type: ignore[valid-type]


# --- workers and job types ----------------------------------------------------------------


class Worker(ApiModel):
    name: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    running: int
    paused: list[str] = Field(description="its queues that are paused")
    last_heartbeat: int
    started_at: int


class WorkerList(ApiModel):
    workers: list[Worker]


class JobTypeInfo(ApiModel):
    name: str
    queue: str
    description: str
    parameters: dict[str, Any] = Field(description="the JSON Schema of its parameters")
    defaults: JobOptions


class JobTypeList(ApiModel):
    job_types: list[JobTypeInfo]


# --- event stream -------------------------------------------------------------------------


class JobEvent(ApiModel):
    """A job event's `data`: what tasks.events recorded, typed (sse.event_data)."""

    queue: str
    event: Literal[EVENTS]  # type: ignore[valid-type]
    job_id: str | None = Field(description="null for the queue's paused and resumed")
    timestamp: int = Field(description="ms since the epoch, from the stream id")
    progress: Any = optional("progress: a number 0-100 or a JSON object")
    returnvalue: Any = optional("completed")
    worker: str = optional("active")
    attempts_made: int = optional("failed, retrying")
    failed_reason: str = optional("failed, retrying")
    delay_until: int = optional("delayed, retrying: due time in ms")
    delay: int = optional("retrying at once")
    reason: str = optional('delayed by the rate limit; removed: "cancelled" for a cancel')
    stalled_count: int = optional("stalled")


class StreamEnd(ApiModel):
    """The `end` event's `data`: the stream reached its lifetime; reconnect."""

    reason: Literal["max_lifetime"]
    reconnect: bool
    max_seconds: float


#: What an event's `data` may hold: the document points StreamMessage.data at these.
STREAM_DATA = (JobEvent, StreamEnd, ErrorDetail)


class StreamMessage(ApiModel):
    """One server-sent event, as framed (sse.py writes the text; this documents it)."""

    event: Literal[(*EVENTS, "end", "error")]  # type: ignore[valid-type]
    data: str = Field(
        description="JSON: a JobEvent, StreamEnd (`end`) or ErrorDetail (`error`)",
        json_schema_extra={"contentMediaType": "application/json"},
    )
    id: str = optional("queue=streamId per queue: send it back as Last-Event-ID",
                       pattern=rf"^{_CURSOR}(,{_CURSOR})*$")  # fmt: skip
    retry: int = optional()


#: Every model a response (or a stream's data) is written through, for tasks.api.openapi.
RESPONSES: tuple[type[BaseModel], ...] = (
    Error, Job, JobDetail, FlowCreated, FlowExisting, Status, TriggerCreated, TriggerExisting,
    JobRemoved, JobLogs, JobCancelled, JobPage, QueueList, QueueDetail, Counts, QueuePaused,
    QueueResumed, QueueRetried, QueueCleaned, QueueRecovered, QueueCountsByName, WorkerList,
    JobTypeList, JobEvent, StreamEnd, ErrorDetail, StreamMessage,
)  # fmt: skip
