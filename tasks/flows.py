"""Flows: a parent job that runs once its children completed (BullMQ's FlowProducer).

A flow is a tree `{name, data, queue?, opts?, children: [...]}`; children may be in any
queue and have children of their own. The whole tree is validated first (every error named
by its path in the tree), then written by one script (tasks/lua/add_flow.lua), so that no
parent exists without its children. A parent waits in `waiting-children` until each child
finished, then runs and reads its children's values (`Job.children_values()`). A child's
final failure fails its parent, naming the child, unless the child was enqueued with
`ignore_dependency_on_failure`. See docs/flows.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tasks import keys, scripts
from tasks.connection import get_redis
from tasks.enqueue import _after_commit
from tasks.errors import (
    InvalidFlow,
    InvalidJobData,
    InvalidJobOptions,
    InvalidJobState,
    UnknownJobType,
)
from tasks.job import Job, get_job
from tasks.options import parse_options
from tasks.registry import dumps, get_job_type

#: Jobs one flow may hold: its script runs in one go inside Redis (about 8 ms per 1,000
#: jobs), so a bigger tree would hold every other client up for longer.
MAX_FLOW_JOBS = 10_000
#: Levels below the root a flow may have: each ending of a child walks up its parents.
MAX_FLOW_DEPTH = 32
#: A node's keys; `queue`, when given, must be its job type's queue (a type declares one).
NODE_KEYS = ("name", "data", "queue", "opts", "children")
#: Child options, beside the enqueue options in `opts` (Python's name, the API's alias):
#: BullMQ's. A child fails its parent by default; with ignore_dependency_on_failure its
#: failure is recorded on the parent (`Job.children_failures()`) and the parent runs.
CHILD_OPTIONS = {
    "ignore_dependency_on_failure": "ignoreDependencyOnFailure",
    "fail_parent_on_failure": "failParentOnFailure",
}
#: add_flow.lua's codes: a job's state as created.
CREATED_AS = {**scripts.CREATED_AS, 5: "waiting-children"}


@dataclass
class JobNode:
    """A flow's job and its children's nodes, as created (BullMQ's JobNode)."""

    job: Job
    children: list[JobNode] = field(default_factory=list)
    #: False when the root's job id existed: `job` is that job, and nothing was created.
    created: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The HTTP API's shape: the job's id, queue, name and state, and its children's."""
        job = self.job
        return {"id": job.id, "queue": job.queue, "name": job.name, "state": job.state,
                "children": [c.to_dict() for c in self.children]}  # fmt: skip

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class _Node:
    path: str
    job: Job
    new: scripts.NewJob
    parent: str
    ignore_failure: bool
    children: list[_Node] = field(default_factory=list)


def ref(queue: str, job_id: str) -> str:
    """How a flow names a job: `queue/id` (ids and queue names hold no slash)."""
    return f"{queue}/{job_id}"


def split_ref(value: str) -> tuple[str, str]:
    queue, _, job_id = value.partition("/")
    return queue, job_id


def _child_option(opts: dict[str, Any], path: str, errors: list[dict[str, str]],
                  is_child: bool) -> bool:  # fmt: skip
    """Pop the child options from `opts`: whether the child's failure is ignored."""
    given = {}
    for name, alias in CHILD_OPTIONS.items():
        for key in (name, alias):
            if key in opts:
                value = opts.pop(key)
                if not isinstance(value, bool):
                    errors.append({"field": f"{path}opts.{key}", "message": "must be a boolean"})
                elif not is_child:
                    errors.append({"field": f"{path}opts.{key}",
                                   "message": "only a child has a parent to fail"})  # fmt: skip
                else:
                    given[name] = value
    ignore = given.get("ignore_dependency_on_failure", False)
    if ignore and given.get("fail_parent_on_failure"):
        errors.append({"field": f"{path}opts.ignoreDependencyOnFailure",
                       "message": "contradicts failParentOnFailure"})  # fmt: skip
    if given.get("fail_parent_on_failure") is False and "ignore_dependency_on_failure" not in given:
        ignore = True  # BullMQ: a child that does not fail its parent is ignored
    return ignore


def _parse(
    raw: Any, path: str, parent: str, depth: int, seen: set[str], errors: list[dict[str, str]],
    count: list[int],
) -> _Node | None:  # fmt: skip
    """One node and its subtree, validated; errors are collected, not raised, so that one
    InvalidFlow names every field at fault."""
    count[0] += 1
    if count[0] > MAX_FLOW_JOBS:
        if count[0] == MAX_FLOW_JOBS + 1:
            errors.append({"field": path or "(root)",
                           "message": f"a flow holds at most {MAX_FLOW_JOBS} jobs"})  # fmt: skip
        return None
    if not isinstance(raw, Mapping):
        errors.append({"field": path or "(root)", "message": "must be an object"})
        return None
    for key in raw:
        if key not in NODE_KEYS:
            errors.append({"field": f"{path}{key}",
                           "message": f"unknown key; a node has {', '.join(NODE_KEYS)}"})  # fmt: skip
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        errors.append({"field": f"{path}name", "message": "required: a job type's name"})
        return None
    try:
        declared = get_job_type(name)
    except UnknownJobType as exc:
        errors.append({"field": f"{path}name", "message": str(exc)})
        return None
    queue = raw.get("queue")
    if queue is not None and queue != declared.queue:
        errors.append({"field": f"{path}queue",
                       "message": f"job type {name!r} runs on queue {declared.queue!r}"})  # fmt: skip
    opts = raw.get("opts") or {}
    if not isinstance(opts, Mapping):
        errors.append({"field": f"{path}opts", "message": "must be an object"})
        opts = {}
    opts = dict(opts)
    ignore = _child_option(opts, path, errors, bool(parent))
    params: dict[str, Any] = {}
    try:
        params = declared.validate(raw.get("data"))
    except InvalidJobData as exc:
        errors.extend({**e, "field": f"{path}data.{e['field']}"} for e in exc.errors)
    try:
        parsed = parse_options(opts).merged_over(declared.defaults)
    except InvalidJobOptions as exc:
        errors.extend({**e, "field": f"{path}opts.{e['field']}"} for e in exc.errors)
        parsed = None
    children_raw = raw.get("children") or []
    if not isinstance(children_raw, list):
        errors.append({"field": f"{path}children", "message": "must be a list"})
        children_raw = []
    if children_raw and depth >= MAX_FLOW_DEPTH:
        errors.append({"field": f"{path}children",
                       "message": f"a flow is at most {MAX_FLOW_DEPTH} levels deep"})  # fmt: skip
        children_raw = []
    if parsed is None:
        return None
    job_id = parsed.job_id or uuid.uuid4().hex
    me = ref(declared.queue, job_id)
    if me in seen:
        errors.append({"field": f"{path}opts.jobId", "message": f"{me} is twice in the flow"})
    seen.add(me)
    stored = parsed.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"job_id"})
    job = Job(
        queue=declared.queue, id=job_id, name=name, data=params, opts=stored,
        attempts=parsed.attempts or 1, priority=parsed.priority_step() + 1, parent=parent or None,
    )  # fmt: skip
    new = scripts.NewJob(job_id, name, dumps(params), dumps(stored), parsed.priority_step(),
                         parsed.timelimit(), parsed.delay, parsed.attempts or 1,
                         int(bool(parsed.lifo)))  # fmt: skip
    node = _Node(path, job, new, parent, ignore)
    for index, child in enumerate(children_raw):
        sub = _parse(child, f"{path}children[{index}].", me, depth + 1, seen, errors, count)
        if sub is not None:
            node.children.append(sub)
    return node


def _flatten(node: _Node) -> list[_Node]:
    """Parents before their children (add_flow.lua writes each parent's keys first)."""
    out = [node]
    for child in node.children:
        out.extend(_flatten(child))
    return out


def _built(node: _Node) -> JobNode:
    return JobNode(node.job, [_built(c) for c in node.children])


def enqueue_flow(tree: Mapping[str, Any]) -> JobNode:
    """Create a flow from `tree` (see the module's doc) and send its leaves; the root's node.

    Everything is validated before anything is written (InvalidFlow names each field by
    its path, `children[0].opts.attempts`). The tree is written in one script call: all of
    it or none. A root whose job id exists returns that job and creates nothing
    (idempotency); another existing id raises InvalidJobState and creates nothing.
    Inside `transaction.atomic()` the flow is written once the transaction commits.
    """
    errors: list[dict[str, str]] = []
    root = _parse(tree, "", "", 0, set(), errors, [0])
    if errors or root is None:
        raise InvalidFlow(errors or [{"field": "(root)", "message": "not a flow"}])
    nodes = _flatten(root)
    rows = [
        scripts.FlowJob(n.job.queue, n.new, n.parent, n.ignore_failure, len(n.children))
        for n in nodes
    ]
    built = _built(root)

    def send() -> None:
        reply = scripts.add_flow(rows)
        if reply and reply[0] == -1:
            raise InvalidJobState(f"job {reply[1]} exists; nothing was created")
        if reply == [0]:
            existing = get_job(root.job.queue, root.job.id)
            built.job = existing or root.job
            built.children, built.created = [], False
            return
        for node, code in zip(nodes, reply, strict=True):
            node.job.state = CREATED_AS[code]

    _after_commit(send)
    return built


# --- reading a flow: the parent's side --------------------------------------------------


def children_refs(job: Job) -> dict[str, str]:
    """Every child of `job` by `queue/id`, with how it stands for the parent: `pending`,
    `processed` or `failed`."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.smembers(keys.deps(job.queue, job.id))
    pipe.hkeys(keys.processed(job.queue, job.id))
    pipe.hkeys(keys.child_failures(job.queue, job.id))
    pending, processed, failed = pipe.execute()
    out = {r.decode(): "processed" for r in processed}
    out.update({r.decode(): "failed" for r in failed})
    out.update({r.decode(): "pending" for r in pending})
    return dict(sorted(out.items()))


def _states(refs: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """(name, state) of each `queue/id` the registry still holds, one round trip."""
    pipe = get_redis().pipeline(transaction=False)
    for r in refs:
        queue, job_id = split_ref(r)
        pipe.hmget(keys.job(queue, job_id), "name", "state")
    out = {}
    for r, (name, state) in zip(refs, pipe.execute(), strict=True):
        out[r] = (name.decode() if name else None, state.decode() if state else None)
    return out


def flow_of(job: Job) -> dict[str, Any]:
    """The job's place in a flow, as the API and the admin show it: `parent` (queue, id,
    name, state; None without one) and `children` (each with its state, or None once the
    registry forgot it, and how it stands for the parent)."""
    standing = children_refs(job)
    wanted = list(standing) + ([job.parent] if job.parent else [])
    states = _states(wanted) if wanted else {}

    def entry(r: str) -> dict[str, Any]:
        queue, job_id = split_ref(r)
        name, state = states[r]
        return {"queue": queue, "id": job_id, "name": name, "state": state}

    return {
        "parent": entry(job.parent) if job.parent else None,
        "children": [{**entry(r), "dependency": s} for r, s in standing.items()],
    }


__all__ = ["JobNode", "enqueue_flow", "flow_of"]
