"""Every Redis key Jobyard reads or writes: the one place that knows their names.

The Lua scripts build the same names from the same tables: tasks/scripts.py prepends
`lua_header()` to every script, and tests/test_keys.py fails when a script names a key
that is not here. Python callers use the functions below and never build a key by hand.
"""

from __future__ import annotations

from django.conf import settings

from tasks.states import STATE_SET

#: A queue's keys: `{prefix}{queue}{suffix}`, followed by a job id or a minute where the
#: key is one of many (`job`, `lock`, `stats`).
QUEUE_KEYS = {
    "job": ":j:",  # hash per job
    "lock": ":lock:",  # a running job's lock (a token with a TTL)
    "stats": ":stats:",  # counters per minute
    # one sorted set per state (tasks.states.STATE_SET names which)
    "wait": ":wait",
    "active": ":active",
    "delayed": ":delayed",
    "completed": ":completed",
    "failed": ":failed",
    "paused": ":paused",  # the queue's paused flag
    "parked": ":parked",  # ids taken while paused, sent again on resume
    "events": ":events",  # the capped event stream
    "durations": ":durations",  # the last 1,000 processing times
    "waits": ":waits",  # the last 1,000 waiting times
    "limiter": ":limiter",  # the rate limit's sliding log
    "bell": ":bell",  # wakes idle consumers: a token per message sent, BELLS_KEPT at most
    # Monotonic totals for Prometheus, never trimmed: `{queue}:total:{counter}` (a hash of
    # job type -> count) and `{queue}:hist:{timing}` (job type + TAB + bucket -> count)
    "total": ":total:",
    "hist": ":hist:",
    # flows (tasks/lua/flows.lua, docs/flows.md): a parent's state set, and per parent id
    "waiting-children": ":waiting-children",  # parents waiting for their children
    "deps": ":deps:",  # a parent's children still pending ("queue/id" each)
    "processed": ":processed:",  # a parent's completed children: "queue/id" -> return value
    "child_failures": ":child-failures:",  # a parent's failed children: "queue/id" -> reason
    # --- job logs (job.log): a list per job, deleted with the job's hash (drop_job in Lua)
    "logs": ":logs:",
    # Groups (tasks/lua/prelude_groups.lua): per group, then per queue.
    "group": ":group:",  # hash per group: in the ring, paused, its own limits
    "gjobs": ":gjobs:",  # a group's messages, as a broker list would hold them
    "gwait": ":gwait:",  # a group's waiting job ids (its messages may hold stale copies)
    "gactive": ":gactive:",  # a group's active job ids: its concurrency
    "glimiter": ":glimiter:",  # a group's rate limit: a sliding log of start times
    "groups": ":groups",  # every group with jobs or settings
    "gring": ":gring",  # groups that may have a job to start, served round robin
    "glimited": ":glimited",  # groups over their rate, scored by when they may start again
    "gconf": ":gconf",  # the queue's default group limits
    # Deduplication (tasks/lua/prelude_dedupe.lua): a key's job, for its window.
    "dedupe": ":dedupe:",
    "debounce": ":debounce:",
}
#: The keys a flow's parent owns besides its hash: removed with it.
PARENT_KEYS = ("deps", "processed", "child_failures")
#: Tokens a queue's bell list holds at most: each wakes one idle consumer, which then takes
#: messages until the lists are empty, so a few are enough; the cap bounds its memory.
BELLS_KEPT = 16
#: Upper bounds (ms) of the processing and waiting time histograms' buckets, which the
#: scripts count in `hist` (tasks/lua/prelude.lua: observe) and /metrics exposes in seconds.
#: Changing them re-buckets only what is counted after the change: clear the `hist` keys.
HISTOGRAM_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000,
                        60_000, 300_000, 900_000, 3_600_000)  # fmt: skip
#: Keys shared by every queue: `{prefix}{suffix}`, then a name where there are many.
GLOBAL_KEYS = {
    "workers": "workers",  # live workers, scored by last heartbeat
    "lost_workers": "lost-workers",  # workers whose heartbeat expired, scored by the last one
    "worker": "worker:",  # one worker's heartbeat hash
    "lease": "lease:",  # a leader lease (the beat's)
    "api_token": "api:token:",  # a token check cached for the HTTP API, by token hash
    "api_streams": "api:streams:",  # the HTTP API's open event streams, by caller
    "unknown_types": "unknown-types",  # job types a worker could not run: "worker\ttype" -> ms
}
#: Celery's result backend (tasks/results.py) stores a task's result under this prefix and
#: announces it on the channel of the same name (celery.backends.redis's task_keyprefix).
RESULT_CHANNEL = "celery-task-meta-"


def prefix() -> str:
    return settings.JOBYARD["KEY_PREFIX"]


def _queue_key(queue: str, name: str, part: object = "") -> str:
    return f"{prefix()}{queue}{QUEUE_KEYS[name]}{part}"


def job(queue: str, job_id: str) -> str:
    return _queue_key(queue, "job", job_id)


def lock(queue: str, job_id: str) -> str:
    return _queue_key(queue, "lock", job_id)


def state(queue: str, state_name: str) -> str:
    """The sorted set holding a queue's jobs in `state_name` (a state, or its set's name)."""
    return _queue_key(queue, STATE_SET.get(state_name, state_name))


def deps(queue: str, job_id: str) -> str:
    return _queue_key(queue, "deps", job_id)


def processed(queue: str, job_id: str) -> str:
    return _queue_key(queue, "processed", job_id)


def child_failures(queue: str, job_id: str) -> str:
    return _queue_key(queue, "child_failures", job_id)


def logs(queue: str, job_id: str) -> str:
    """Job `job_id`'s log lines (job.log), oldest first; it lives as long as the job."""
    return _queue_key(queue, "logs", job_id)


def paused(queue: str) -> str:
    return _queue_key(queue, "paused")


def bell(queue: str) -> str:
    return _queue_key(queue, "bell")


def group_key(queue: str, name: str, group: str = "") -> str:
    """A group's key `name` (group, gjobs, gwait, gactive, glimiter), or a queue's group
    key (groups, gring, glimited, gconf) with no `group`."""
    return _queue_key(queue, name, group)


def dedupe(queue: str, key: str) -> str:
    return _queue_key(queue, "dedupe", key)


def debounce(queue: str, key: str) -> str:
    return _queue_key(queue, "debounce", key)


def events(queue: str) -> str:
    return _queue_key(queue, "events")


def stats(queue: str, minute: int) -> str:
    return _queue_key(queue, "stats", minute)


def total(queue: str, counter: str) -> str:
    """A queue's monotonic count of `counter` (tasks.metrics.TOTALS), per job type."""
    return _queue_key(queue, "total", counter)


def histogram(queue: str, timing: str) -> str:
    """A queue's bucket counts of `timing` ("processing" or "waiting"), per job type."""
    return _queue_key(queue, "hist", timing)


def workers() -> str:
    return f"{prefix()}{GLOBAL_KEYS['workers']}"


def lost_workers() -> str:
    return f"{prefix()}{GLOBAL_KEYS['lost_workers']}"


def worker(name: str) -> str:
    return f"{prefix()}{GLOBAL_KEYS['worker']}{name}"


def lease(name: str) -> str:
    return f"{prefix()}{GLOBAL_KEYS['lease']}{name}"


def api_token(token_hash: str) -> str:
    return f"{prefix()}{GLOBAL_KEYS['api_token']}{token_hash}"


def unknown_types() -> str:
    return f"{prefix()}{GLOBAL_KEYS['unknown_types']}"


def api_streams(caller: str) -> str:
    return f"{prefix()}{GLOBAL_KEYS['api_streams']}{caller}"


# --- kombu's keys: the broker lists Jobyard's enqueue writes to and its consumer pops ----


def broker_sep() -> str:
    return settings.CELERY_BROKER_TRANSPORT_OPTIONS["sep"]


def broker_list(queue: str, step: int = 0) -> str:
    """kombu's list for `queue` at priority step `step` (0, the highest, has no suffix)."""
    return f"{queue}{broker_sep()}{step}" if step else queue


def broker_lists(queue: str) -> list[str]:
    """Every priority list of `queue`, highest first, as kombu polls them."""
    steps = settings.CELERY_BROKER_TRANSPORT_OPTIONS["priority_steps"]
    return [broker_list(queue, step) for step in steps]


def lua_header() -> str:
    """The key tables as Lua, prepended to every script (see tasks/lua/prelude.lua)."""

    def table(mapping: dict[str, str]) -> str:
        return "{" + ", ".join(f"[{k!r}] = {v!r}" for k, v in mapping.items()) + "}"

    return (
        "-- Generated from tasks/keys.py and tasks/states.py: the key names' one home.\n"
        f"local QUEUE_KEYS = {table(QUEUE_KEYS)}\n"
        f"local GLOBAL_KEYS = {table(GLOBAL_KEYS)}\n"
        f"local STATE_SET = {table(STATE_SET)}\n"
        f"local BROKER_SEP = {broker_sep()!r}\n"
        f"local BELLS_KEPT = {BELLS_KEPT}\n"
        f"local HISTOGRAM_BUCKETS_MS = {{{', '.join(map(str, HISTOGRAM_BUCKETS_MS))}}}\n"
        f"local RESULT_CHANNEL = {RESULT_CHANNEL!r}\n"
        f"local LEAN_MESSAGES = {'true' if settings.JOBYARD['LEAN_MESSAGES'] else 'false'}\n"
    )
