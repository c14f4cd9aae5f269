"""The job state vocabulary: the one definition every layer (registry, API, CLI, admin) reads.

A job is in exactly one state. `paused` is how a waiting job of a paused queue reads back:
the registry keeps both in the queue's `wait` set, and the queue's paused flag decides.
`waiting-children` is a flow's parent waiting for its children (BullMQ's name; docs/flows.md).
"""

from __future__ import annotations

#: Every state a job can be in, in the order listings and counts show them.
STATES = ("waiting", "delayed", "active", "completed", "failed", "paused", "waiting-children")
#: States a job leaves only by retry, removal or retention.
FINISHED = ("completed", "failed")
#: States `Queue.clean` may remove from: an active job is held by its worker, never cleaned.
CLEANABLE = ("completed", "failed", "delayed", "waiting", "paused")
#: What a request to clean active jobs is told: the safe fix for stuck ones instead.
ACTIVE_NOT_CLEANABLE = (
    "active jobs are never cleaned (a live worker may be running them); to fix stuck "
    "active jobs use recover-stalled (API: POST /api/v1/queues/{queue}/recover-stalled, "
    "CLI: jobs recover-stalled QUEUE [--fail], admin: the dashboard's Recover stalled), "
    "which sends again, or fails, only the jobs whose worker's lock expired"
)
#: The archive's states: the registry's, with `paused` archived as `waiting` (pause is the
#: queue's state, and no per-job event says when it ends), plus `cancelled` (a waiting or
#: delayed job cancelled by an operator).
ARCHIVE_STATES = ("waiting", "delayed", "active", "completed", "failed", "cancelled",
                  "waiting-children")  # fmt: skip

#: The registry's set per state (tasks.keys.state); paused jobs live in `wait`.
STATE_SET = {
    "waiting": "wait", "paused": "wait", "delayed": "delayed", "active": "active",
    "completed": "completed", "failed": "failed", "waiting-children": "waiting-children",
}  # fmt: skip

#: Events on a queue's stream: one per state change, each naming the job (see tasks.events).
JOB_EVENTS = ("waiting", "active", "progress", "completed", "failed", "delayed", "retrying",
              "stalled", "removed", "waiting-children")  # fmt: skip
#: Events about the queue itself (jobId names the queue's marker, not a job).
QUEUE_EVENTS = ("paused", "resumed")
EVENTS = JOB_EVENTS + QUEUE_EVENTS


def counts_by_state(waiting: int, active: int, completed: int, failed: int, delayed: int,
                    paused: int | bool, waiting_children: int = 0) -> dict[str, int]:  # fmt: skip
    """The seven counts, from the registry's six sets and the queue's paused flag: a paused
    queue's waiting jobs count as paused (its `wait` set holds both)."""
    return {
        "waiting": 0 if paused else waiting,
        "active": active,
        "completed": completed,
        "failed": failed,
        "delayed": delayed,
        "paused": waiting if paused else 0,
        "waiting-children": waiting_children,
    }
