"""Jobyard's job platform: declare job types, enqueue them, inspect and steer them.

Everything here is the public API; domain apps use nothing else of `tasks`.
"""

from tasks.enqueue import enqueue, enqueue_bulk
from tasks.errors import (
    InvalidJobData,
    InvalidJobOptions,
    InvalidJobState,
    JobFailed,
    JobyardError,
    PermanentError,
    UnknownJobType,
    UnknownQueue,
    WaitTimeout,
)
from tasks.events import Event, consume, subscribe
from tasks.job import Job, find_job, get_job
from tasks.metrics import all_queue_metrics, get_workers, unknown_job_types
from tasks.queue import Queue
from tasks.registry import get_job_type, job_type, job_types
from tasks.scheduling.defaults import default_schedule

__all__ = [
    "Event", "InvalidJobData", "InvalidJobOptions", "InvalidJobState", "Job", "JobFailed",
    "JobyardError", "PermanentError", "Queue", "UnknownJobType", "UnknownQueue", "WaitTimeout",
    "all_queue_metrics", "consume", "default_schedule", "enqueue", "enqueue_bulk", "find_job", "get_job",
    "get_job_type", "get_workers", "job_type", "job_types", "subscribe", "unknown_job_types",
    "API_READ", "API_WRITE", "ApiError", "api_view", "read_json",
]  # fmt: skip


def __getattr__(name: str):
    """The HTTP API's helpers, for apps that add endpoints under /api/ (catalog's imports):
    `@api_view({"POST": API_WRITE})` (tokens, scopes, CSRF, JSON errors), `ApiError`,
    `read_json`. Imported on first use: they need Django's apps loaded, and `tasks` is
    imported before that (settings, the pytest plugin)."""
    if name in ("API_READ", "API_WRITE", "ApiError", "api_view", "read_json"):
        from tasks.api import base, errors

        exports = {"API_READ": base.READ, "API_WRITE": base.WRITE, "ApiError": errors.ApiError,
                   "api_view": base.api_view, "read_json": base.read_json}  # fmt: skip
        return exports[name]
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")
