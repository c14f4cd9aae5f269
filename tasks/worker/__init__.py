"""What runs inside a Celery worker: everything in this package, and nothing else does.

- `transport`: kombu's Redis transport with Jobyard's consumer (take.lua: pop and claim);
- `claims`: how a job becomes this worker's (the claim header, deferred completions);
- `runner`: the Celery task class of every job type, running one attempt and recording it;
- `maintenance`: the worker's loop (promote due delays, find stalled jobs, heartbeat).

The registry core (tasks.registry, job, queue, enqueue, scripts, keys, ...) imports nothing
from here: `install()` wires this package in when Django starts (tasks/apps.py).
"""

from __future__ import annotations


def install() -> None:
    """Hook the worker side in: a Celery task per job type, the worker signals."""
    from tasks.registry import on_declare
    from tasks.worker import maintenance  # noqa: F401  (connects Celery's worker signals)
    from tasks.worker.runner import install_task

    on_declare(install_task)
