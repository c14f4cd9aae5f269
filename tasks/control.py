"""Operations on one job that change the registry and the archive together.

`cancel_job` and `remove_job` take the job out of the registry through its public API
(`tasks.get_job`, `Job.remove`) and archive it at once (tasks.archive.record_removed),
rather than leave it to the recorder: the admin shows the outcome on the next page, and a
cancellation is a state (`cancelled`) no registry event carries.
"""

from __future__ import annotations

from tasks import InvalidJobState, Job, archive, get_job

#: States a job can be cancelled in: it has not started, and no worker holds it.
CANCELLABLE = ("waiting", "delayed", "paused")


def cancel_job(queue: str, job_id: str) -> Job | None:
    """Cancel a job before it runs: remove it from the registry and archive it `cancelled`.

    Returns the cancelled job (its fields as they were; `state` None, as after
    `Job.remove`), or None when the registry has no such job. Raises InvalidJobState when
    it is running (its worker holds it until the attempt ends) or already finished.
    UnknownQueue for a queue that is not configured.
    """
    job = get_job(queue, job_id)
    if job is None:
        return None
    if job.state == "active":
        raise InvalidJobState(
            f"job {job_id} is running on {job.worker or 'a worker'}, so it cannot be "
            "cancelled: the worker holds it until the attempt ends (its timeout bounds that)"
        )
    if job.state not in CANCELLABLE:
        raise InvalidJobState(f"job {job_id} is already {job.state}; nothing to cancel")
    job.remove()  # InvalidJobState when a worker took it meanwhile
    archive.record_removed(job, "cancelled")
    return job


def remove_job(job: Job) -> None:
    """Remove a job (any state but active) and archive it in the state it had, removed now.

    Raises InvalidJobState when it is active or no longer exists.
    """
    state = job.state
    job.remove()
    archive.record_removed(job, state)
