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
]  # fmt: skip
