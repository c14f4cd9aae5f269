"""The HTTP API's endpoints (DESIGN.md, "HTTP API"): JSON in and out, camelCase.

Every view goes through the `tasks` Python API; none reads Redis by itself.
"""

from __future__ import annotations

from typing import Literal

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tasks import (
    InvalidJobData,
    InvalidJobOptions,
    Job,
    Queue,
    all_queue_metrics,
    enqueue,
    get_job,
    get_job_type,
    get_workers,
)
from tasks import find_job as find_job_in_queues
from tasks import job_types as declared_job_types
from tasks.api import schemas
from tasks.api.base import READ, WRITE, api_view, parse_model, query_int, read_json, valid_id
from tasks.api.errors import ApiError, not_found
from tasks.api.schemas import respond
from tasks.control import cancel_job
from tasks.flows import flow_of
from tasks.options import parse_options
from tasks.scheduling.service import list_schedules
from tasks.states import ACTIVE_NOT_CLEANABLE, CLEANABLE, STATES

#: How many jobs `recentJobs` (status) and each list of a queue's `recent` hold.
RECENT_JOBS = 20
RECENT_PER_STATE = 10
#: The longest page GET /api/v1/queues/{queue}/jobs returns.
MAX_PAGE = 1000


# --- triggering ---------------------------------------------------------------------------


@transaction.non_atomic_requests
@api_view({"POST": WRITE})
def trigger(request: HttpRequest) -> HttpResponse:
    """`{"jobType": name, <parameters>, "options": {...}}`: 202 for a new job, 200 with the
    existing job when `options.jobId` names one that exists (nothing new is created)."""
    body = read_json(request)
    name = body.pop("jobType", None)
    if not isinstance(name, str) or not name:
        message = "required: the name of a job type" if name is None else "must be a string"
        raise ApiError(422, "invalid_request", f"jobType: {message}",
                       fields=[{"field": "jobType", "message": message}],
                       known=sorted(declared_job_types()))  # fmt: skip
    declared = get_job_type(name)  # UnknownJobType: a 400 listing the known ones
    options = body.pop("options", None)
    if options is None:
        options = {}
    if not isinstance(options, dict):
        message = "must be an object"
        raise ApiError(422, "invalid_job_options", f"options: {message}",
                       fields=[{"field": "options", "message": message}])  # fmt: skip
    # Both checked here so that one 422 names every bad field, parameters and options alike;
    # options also before being spread into keyword arguments: an option called `name` or
    # `data` must be refused as unknown, not collide with enqueue's own arguments.
    fields: list[dict[str, str]] = []
    try:
        declared.validate(body)
    except InvalidJobData as exc:
        fields += exc.errors
    try:
        parse_options(options)
    except InvalidJobOptions as exc:
        fields += [{**e, "field": f"options.{e['field']}"} for e in exc.errors]
    if fields:
        code = (
            "invalid_job_options"
            if fields[0]["field"].startswith("options.")
            else "invalid_job_data"
        )
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        raise ApiError(422, code, f"invalid {name!r} job: {detail}", fields=fields)
    job = enqueue(declared.name, body, **options)
    if job.state is None:
        # Either deferred to an outer transaction's commit (not here: this view is
        # non-atomic), or the job with this existing id was removed between enqueue's
        # script and its re-read of the job.
        raise ApiError(409, "job_vanished", f"job {job.id} existed and was removed meanwhile")
    # enqueue() hands back the job it created as built in Python, without reading it back
    # (created_at is unset), and an existing job with that id as re-read from the registry
    # (created_at set): see tasks.enqueue._settle. That tells the two apart without a second
    # read, and it is race-free: the enqueue script itself decided which it was.
    created = job.created_at is None
    # A paused queue accepts jobs: enqueue reports them `paused` until resume.
    reply = {"jobId": job.id, "queue": job.queue, "state": job.state, "created": created}
    if created:
        return respond(schemas.TriggerCreated, reply, 202)
    return respond(schemas.TriggerExisting, {**reply, "job": job.to_dict()})


# --- status -------------------------------------------------------------------------------


@api_view({"GET": READ})
def status(request: HttpRequest) -> HttpResponse:
    """Counts over every queue and the newest jobs; `?jobId=` (and `?queue=`) one job."""
    job_id = request.GET.get("jobId")
    queue = request.GET.get("queue")
    if queue is not None:
        Queue(queue)  # 404 for an unknown queue
    if job_id is not None:
        return respond(schemas.Job, find_job(job_id, queue).to_dict())
    queues = [queue] if queue else list(settings.JOBYARD_QUEUES)
    counts = {name: Queue(name).counts() for name in queues}
    totals = {state: sum(c[state] for c in counts.values()) for state in STATES}
    return respond(schemas.Status, {"queueStats": totals, "queues": counts,
                   "recentJobs": [j.to_dict() for j in recent_jobs(counts)]})  # fmt: skip


def find_job(job_id: str, queue: str | None = None) -> Job:
    """A job by id in `queue`, or in the first queue (in settings order) that holds one.

    Ids are unique per queue, not across queues: a caller that knows the queue should say.
    """
    job = find_job_in_queues(job_id, queue) if valid_id(job_id) else None
    if job is not None:
        return job
    raise not_found("job", f"no job {job_id!r}" + (f" in queue {queue!r}" if queue else ""))


def _last_activity(job: Job) -> int:
    return job.finished_on or job.processed_on or job.created_at or 0


def recent_jobs(counts: dict[str, dict[str, int]], limit: int = RECENT_JOBS) -> list[Job]:
    """The `limit` jobs across queues that moved last (finished, started or were created).

    From each queue: its running jobs and newest finished ones, and the newest end of its
    waiting (or paused) list. Delayed jobs are not "recent" until they run. A queue with
    nothing in a state costs no read for it: a few round trips per busy queue in all,
    whatever the number of jobs.
    """
    found: list[Job] = []
    for name, c in counts.items():
        queue = Queue(name)
        if c["active"] or c["completed"] or c["failed"]:
            found += queue.get_jobs(["active", "completed", "failed"], 0, limit - 1)
        pending = c["waiting"] + c["paused"]
        if pending:
            state = "paused" if c["paused"] else "waiting"
            found += queue.get_jobs([state], max(0, pending - limit), pending - 1)
    found.sort(key=_last_activity, reverse=True)
    return found[:limit]


# --- one job ------------------------------------------------------------------------------


def _job_or_404(queue: str, job_id: str) -> Job:
    Queue(queue)  # 404 for an unknown queue
    job = get_job(queue, job_id) if valid_id(job_id) else None
    if job is None:
        raise not_found("job", f"no job {job_id!r} in queue {queue!r}")
    return job


@api_view({"GET": READ, "DELETE": WRITE})
def job_detail(request: HttpRequest, queue: str, job_id: str) -> HttpResponse:
    job = _job_or_404(queue, job_id)
    if request.method == "DELETE":
        job.remove()  # InvalidJobState for an active job: 409
        return respond(schemas.JobRemoved, {"jobId": job_id, "queue": queue, "removed": True})
    return respond(schemas.JobDetail, {**job.to_dict(), **flow_of(job)})


@api_view({"POST": WRITE})
def job_retry(request: HttpRequest, queue: str, job_id: str) -> HttpResponse:
    """Send a failed job again with a fresh attempt budget; 409 when it is not failed."""
    job = _job_or_404(queue, job_id)
    job.retry()
    return respond(schemas.Job, job.to_dict())


# --- one job: logs, cancel, promote (issue 14) ----------------------------------------------


@api_view({"GET": READ})
def job_logs(request: HttpRequest, queue: str, job_id: str) -> HttpResponse:
    """A page of the job's log lines, oldest first: `?start=0&end=-1` (inclusive; -1 the
    last), at most LOGS_PAGE_MAX lines; `count` is how many the job holds."""
    job = _job_or_404(queue, job_id)
    start = query_int(request, "start", 0, 0, 10**9)
    end = query_int(request, "end", -1, -1, 10**9)
    if end != -1 and end < start:
        message = "must be -1 (the last line) or at least start"
        raise ApiError(422, "invalid_request", f"end: {message}",
                       fields=[{"field": "end", "message": message}])  # fmt: skip
    lines, count = job.get_logs(start, end)
    return respond(schemas.JobLogs, {"logs": lines, "count": count})


@api_view({"POST": WRITE})
def job_cancel(request: HttpRequest, queue: str, job_id: str) -> HttpResponse:
    """Cancel a job: removed when it had not started (200, `cancelled: "removed"`), asked
    to stop when it runs (202, `cancelled: "cancelling"`; it fails "cancelled" within the
    grace period); 409 when it has finished."""
    job = _job_or_404(queue, job_id)
    found = cancel_job(queue, job.id)  # InvalidJobState (finished): 409
    if found is None:
        raise not_found("job", f"no job {job_id!r} in queue {queue!r}")
    if found.state is None:
        reply = {"jobId": job_id, "queue": queue, "cancelled": "removed",
                 "cancelRequestedAt": None, "job": None}  # fmt: skip
        return respond(schemas.JobCancelled, reply)
    reply = {"jobId": job_id, "queue": queue, "cancelled": "cancelling",
             "cancelRequestedAt": found.cancel_requested_at, "job": found.to_dict()}  # fmt: skip
    return respond(schemas.JobCancelled, reply, 202)


@api_view({"POST": WRITE})
def job_promote(request: HttpRequest, queue: str, job_id: str) -> HttpResponse:
    """Run a delayed job now (it becomes waiting); 409 when it is not delayed."""
    job = _job_or_404(queue, job_id)
    job.promote()
    return respond(schemas.Job, job.to_dict())


# --- queues -------------------------------------------------------------------------------


@api_view({"GET": READ})
def queues(request: HttpRequest) -> HttpResponse:
    return respond(schemas.QueueList, {"queues": all_queue_metrics()})


@api_view({"GET": READ})
def queue_detail(request: HttpRequest, queue: str) -> HttpResponse:
    q = Queue(queue)
    recent = {
        state: [j.to_dict() for j in q.get_jobs([state], 0, RECENT_PER_STATE - 1)]
        for state in schemas.RecentJobs.model_fields  # completed, failed, active
    }
    return respond(
        schemas.QueueDetail,
        {
            "name": queue,
            "paused": q.is_paused(),
            "counts": q.counts(),
            "recent": recent,
            "scheduled": list_schedules(queue),
        },
    )


@api_view({"GET": READ})
def queue_stats(request: HttpRequest, queue: str) -> HttpResponse:
    return respond(schemas.Counts, Queue(queue).counts())


@api_view({"GET": READ})
def jobs_metrics(request: HttpRequest) -> HttpResponse:
    """The pricing engine's `GET /api/jobs/metrics`: every queue's counts per state."""
    counts = {name: Queue(name).counts() for name in settings.JOBYARD_QUEUES}
    return respond(schemas.QueueCountsByName, {"metrics": counts})


@api_view({"GET": READ})
def queue_jobs(request: HttpRequest, queue: str) -> HttpResponse:
    """A page of a queue's jobs: `?state=failed,completed&start=0&end=49`."""
    q = Queue(queue)
    raw = request.GET.get("state") or ",".join(STATES)
    states = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = [s for s in states if s not in STATES]
    if unknown or not states:
        message = f"must be states among {', '.join(STATES)}"
        raise ApiError(422, "invalid_request", f"state: {message}",
                       fields=[{"field": "state", "message": message}])  # fmt: skip
    start = query_int(request, "start", 0, 0, 10**9)
    end = query_int(request, "end", start + 49, start, start + MAX_PAGE - 1)
    jobs = q.get_jobs(states, start, end)
    return respond(schemas.JobPage, {"queue": queue, "states": states, "start": start,
                                     "end": end, "jobs": [j.to_dict() for j in jobs]})  # fmt: skip


@api_view({"POST": WRITE})
def queue_pause(request: HttpRequest, queue: str) -> HttpResponse:
    Queue(queue).pause()
    return respond(schemas.QueuePaused, {"queue": queue, "paused": True})


@api_view({"POST": WRITE})
def queue_resume(request: HttpRequest, queue: str) -> HttpResponse:
    sent = Queue(queue).resume()
    return respond(schemas.QueueResumed, {"queue": queue, "paused": False, "resumed": sent})


@api_view({"POST": WRITE})
def queue_retry_failed(request: HttpRequest, queue: str) -> HttpResponse:
    return respond(schemas.QueueRetried, {"queue": queue, "retried": Queue(queue).retry_failed()})


class CleanRequest(BaseModel):
    #: Strict as JSON types are: `"grace": "10"` or `"limit": true` is a 422, not a number.
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, strict=True
    )

    grace: int = Field(default=0, ge=0, le=10 * 365 * 24 * 3600 * 1000,
                       description="ms: only jobs older than this")  # fmt: skip
    limit: int = Field(default=1000, ge=1, le=100_000, description="at most this many jobs")
    state: Literal[CLEANABLE] = "completed"  # type: ignore[valid-type]


@api_view({"POST": WRITE})
def queue_clean(request: HttpRequest, queue: str) -> HttpResponse:
    """Remove up to `limit` jobs in `state` older than `grace` ms (body optional)."""
    q = Queue(queue)
    body = read_json(request, required=False)
    if isinstance(body, dict) and body.get("state") == "active":
        # The seeds' manual fix for stuck jobs; say what does it safely.
        message = ACTIVE_NOT_CLEANABLE.replace("{queue}", queue)
        raise ApiError(422, "invalid_request", f"state: {message}",
                       fields=[{"field": "state", "message": message}])  # fmt: skip
    clean = parse_model(CleanRequest, body)
    removed = q.clean(clean.grace, clean.limit, clean.state)
    return respond(schemas.QueueCleaned, {"queue": queue, "state": clean.state,
                                          "removed": len(removed), "jobIds": removed})  # fmt: skip


class RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    action: Literal["requeue", "fail"] = Field(
        default="requeue", description="send the stuck jobs again, or fail them (no retry)"
    )


@api_view({"POST": WRITE})
def queue_recover_stalled(request: HttpRequest, queue: str) -> HttpResponse:
    """Active jobs whose worker's lock expired: sent again now (or failed); live ones kept."""
    q = Queue(queue)
    recover = parse_model(RecoverRequest, read_json(request, required=False))
    ids = q.recover_stalled(fail=recover.action == "fail")
    return respond(schemas.QueueRecovered, {"queue": queue, "action": recover.action,
                                            "recovered": len(ids), "jobIds": ids})  # fmt: skip


# --- workers and job types ----------------------------------------------------------------


@api_view({"GET": READ})
def workers(request: HttpRequest) -> HttpResponse:
    return respond(schemas.WorkerList, {"workers": get_workers()})


@api_view({"GET": READ})
def job_types(request: HttpRequest) -> HttpResponse:
    return respond(
        schemas.JobTypeList,
        {
            "jobTypes": [
                {
                    "name": jt.name,
                    "queue": jt.queue,
                    "description": jt.description,
                    "parameters": jt.json_schema(),
                    "defaults": jt.defaults.model_dump(
                        mode="json", by_alias=True, exclude_none=True
                    ),
                }
                for jt in declared_job_types().values()
            ]
        },
    )


# --- anything else under /api/ ------------------------------------------------------------

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@api_view({method: READ for method in ALL_METHODS})
def unknown_path(request: HttpRequest, path: str = "") -> HttpResponse:
    raise not_found("path", f"no API endpoint at {request.path}")
