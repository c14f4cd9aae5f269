"""What runs inside a Celery worker: everything in this package, and nothing else does.

- `transport`: kombu's Redis transport with Jobyard's consumer (take.lua: pop and claim);
- `claims`: how a job becomes this worker's (the claim header, deferred completions);
- `runner`: the Celery task class of every job type, running one attempt and recording it;
- `tracking`: the same record for plain Celery tasks, written from Celery's task signals;
- `consumer`: Celery's worker consumer, handing back jobs of types this worker lacks;
- `maintenance`: the worker's loop (promote due delays, find stalled jobs, heartbeat).

The registry core (tasks.registry, job, queue, enqueue, scripts, keys, ...) imports nothing
from here: `install()` wires this package in when Django starts (tasks/apps.py).
"""

from __future__ import annotations


def install() -> None:
    """Hook the worker side in: a Celery task per job type, the worker signals."""
    from tasks.registry import on_declare
    from tasks.results import JobyardBackend
    from tasks.worker import maintenance, tracking  # noqa: F401  (connect Celery's signals)
    from tasks.worker.runner import install_task

    on_declare(install_task)
    JobyardBackend.record_outcome = staticmethod(tracking.from_backend)
