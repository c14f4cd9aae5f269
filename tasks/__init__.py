"""Jobyard's job platform: declare job types, enqueue them, inspect and steer them.

Everything here is the public API; domain apps use nothing else of `tasks`.
"""

from tasks.archive_stats import archive_daily_stats
from tasks.enqueue import enqueue, enqueue_bulk
from tasks.errors import (
    InvalidFlow,
    InvalidJobData,
    InvalidJobOptions,
    InvalidJobState,
    JobCancelled,
    JobFailed,
    JobyardError,
    PermanentError,
    RetryAfter,
    UnknownJobType,
    UnknownQueue,
    WaitTimeout,
)
from tasks.events import Event, consume, subscribe
from tasks.flows import JobNode, enqueue_flow
from tasks.job import Job, find_job, get_job
from tasks.metrics import (
    all_queue_metrics,
    get_workers,
    lost_workers,
    redis_memory,
    unknown_job_types,
)
from tasks.queue import Queue
from tasks.registry import get_job_type, job_type, job_types
from tasks.scheduling.defaults import default_schedule
from tasks.scheduling.patterns import InvalidSchedule, parse_pattern, split_pattern
from tasks.scheduling.service import install_schedule, list_schedules

__all__ = [
    "InvalidSchedule", "install_schedule", "list_schedules", "parse_pattern", "split_pattern",
    "Event", "InvalidFlow", "JobNode", "enqueue_flow", "InvalidJobData", "InvalidJobOptions",
    "InvalidJobState", "Job", "JobCancelled", "JobFailed",
    "JobyardError", "PermanentError", "Queue", "RetryAfter", "UnknownJobType", "UnknownQueue", "WaitTimeout",
    "all_queue_metrics", "consume", "default_schedule", "enqueue", "enqueue_bulk", "find_job", "get_job",
    "get_job_type", "get_workers", "job_type", "job_types", "subscribe", "unknown_job_types",
    "API_READ", "API_WRITE", "ApiError", "api_view", "read_json", "archive_rows",
    "archive_daily_stats", "bar_chart", "dashboard_section", "api_paths",
    "lost_workers", "redis_memory",
]  # fmt: skip


#: For apps' own API views: `@api_view({"GET": API_READ})` authenticates as every /api/ view
#: does (a bearer token or a staff session, scopes, CSRF) and answers any error as JSON;
#: `raise ApiError(400, "invalid_query", "...", fields=[...])`; `read_json(request)`.
#: Imported on first use: the API's modules need Django's apps ready, and this package is
#: imported before they are (settings, the pytest plugin).
_API_EXPORTS = {
    "api_view": ("tasks.api.base", "api_view"), "read_json": ("tasks.api.base", "read_json"),
    "API_READ": ("tasks.api.base", "READ"), "API_WRITE": ("tasks.api.base", "WRITE"),
    "ApiError": ("tasks.api.errors", "ApiError"),
    # The job archive's read for apps (reports): an iterator of plain dicts, never the model.
    "archive_rows": ("tasks.archive", "archive_rows"),
    # The admin dashboard: sections apps add (in AppConfig.ready), and its SVG bar chart.
    "dashboard_section": ("tasks.dashboard", "dashboard_section"),
    "bar_chart": ("tasks.dashboard", "bar_chart"),
    # The OpenAPI document: paths apps add (in AppConfig.ready), built with the platform's.
    "api_paths": ("tasks.api.openapi", "api_paths"),
}  # fmt: skip


def __getattr__(name: str):
    found = _API_EXPORTS.get(name)
    if found is None:
        raise AttributeError(f"module 'tasks' has no attribute {name!r}")
    import importlib

    module, attr = found
    return getattr(importlib.import_module(module), attr)
