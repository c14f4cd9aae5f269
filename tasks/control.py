"""Operations on one job that change the registry and the archive together.

`cancel_job` and `remove_job` take the job out of the registry through its public API
(`tasks.get_job`, `Job.cancel`, `Job.remove`) and archive it at once (tasks.archive.record_removed),
rather than leave it to the recorder: the admin shows the outcome on the next page, and a
cancellation is a state (`cancelled`) no registry event carries.
"""

from __future__ import annotations

from tasks import InvalidJobState, Job, archive, get_job

#: States a job is cancelled in by removing it: it has not started, and no worker holds it.
#: A running (active) job is asked to stop instead (Job.cancel).
CANCELLABLE = ("waiting", "delayed", "paused")


def cancel_job(queue: str, job_id: str) -> Job | None:
    """Cancel a job: one that has not started is removed from the registry and archived
    `cancelled` at once; a running one is asked to stop (`Job.cancel`: it fails "cancelled"
    within the grace period, and the recorder archives that).

    Returns the job (`state` None when it was removed, `active` while it is being
    cancelled), or None when the registry has no such job. Raises InvalidJobState when it
    has already finished; UnknownQueue for a queue that is not configured.
    """
    job = get_job(queue, job_id)
    if job is None:
        return None
    try:
        outcome = job.cancel()
    except InvalidJobState:
        if get_job(queue, job_id) is None:  # removed meanwhile
            return None
        raise
    if outcome == "removed":
        archive.record_removed(job, "cancelled")
    return job


def remove_job(job: Job) -> None:
    """Remove a job (any state but active) and archive it in the state it had, removed now.

    Raises InvalidJobState when it is active or no longer exists.
    """
    state = job.state
    job.remove()
    archive.record_removed(job, state)
