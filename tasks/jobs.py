"""Built-in job types of the platform."""

from __future__ import annotations

import socket
import time
from typing import Any

from tasks.job import Job
from tasks.registry import job_type


@job_type("ping", queue="default", attempts=1)
def ping(job: Job, sent_at: float | None = None) -> dict[str, Any]:
    """The smoke test of the whole pipeline: returns pong and when it ran."""
    started = time.time()
    return {
        "pong": True,
        "jobId": job.id,
        "worker": socket.gethostname(),
        "sentAt": sent_at,
        "startedAt": started,
        "queueMs": round((started - sent_at) * 1000, 3) if sent_at else None,
    }
