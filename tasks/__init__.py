"""Jobyard's job platform: declare job types, enqueue them, inspect them."""

from tasks.enqueue import enqueue
from tasks.registry import JobContext, UnknownJobType, job_type

__all__ = ["JobContext", "UnknownJobType", "enqueue", "job_type"]
