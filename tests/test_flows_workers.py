"""Flows on real workers (issue #14's acceptance): 1 parent and 1,000 children across two
queues on two workers. The parent runs once, after the last child, and sees every result;
a child failing past its attempts fails the parent naming it; a worker SIGKILLed mid-flow
loses nothing. Queues no session worker consumes: notifications and webhooks for the
children, cleanup for the parent."""

from __future__ import annotations

import uuid

import pytest

from tasks import enqueue_flow, get_job
from tasks.connection import get_redis
from tests.conftest import runs, wait_for

CHILD_QUEUES = ("notifications", "webhooks")
PARENT_QUEUE = "cleanup"
N = 1000


def big_flow(key: str, child_type: str = "t-record", **child_data) -> dict:
    children = [
        {"name": f"{child_type}.{CHILD_QUEUES[i % 2]}", "data": {"key": key, **child_data}}
        for i in range(N)
    ]
    return {"name": f"t-gather.{PARENT_QUEUE}", "data": {"key": key}, "children": children}


def order(key: str) -> list[str]:
    return [i.decode() for i in get_redis().lrange(f"{key}:order", 0, -1)]


def finished(node) -> bool:
    job = get_job(node.job.queue, node.job.id)
    return job is not None and job.state in ("completed", "failed")


@pytest.mark.slow
def test_a_thousand_children_on_two_workers_then_the_parent_once(jobyard_worker):
    key = f"flow-{uuid.uuid4().hex[:8]}"
    node = enqueue_flow(big_flow(key))
    assert get_job(PARENT_QUEUE, node.job.id).state == "waiting-children"
    jobyard_worker([CHILD_QUEUES[0], PARENT_QUEUE])
    jobyard_worker([CHILD_QUEUES[1], PARENT_QUEUE])
    wait_for(lambda: finished(node), timeout=240, message="the parent to finish")

    parent = get_job(PARENT_QUEUE, node.job.id)
    assert parent.state == "completed", parent.failed_reason
    value = parent.returnvalue
    assert value["run"] == N + 1  # every child ran once before it, and it ran once
    assert value["children"] == N
    assert value["sum"] == N * (N + 1) // 2  # each child's value is its run number
    ran = order(key)
    assert ran.count(node.job.id) == 1 and ran[-1] == node.job.id
    assert len(ran) == N + 1


@pytest.mark.slow
def test_a_child_failing_past_its_attempts_fails_the_parent_naming_it(jobyard_worker):
    key = f"flow-{uuid.uuid4().hex[:8]}"
    tree = big_flow(key)
    tree["children"][500] = {
        "name": f"t-flaky.{CHILD_QUEUES[0]}", "data": {"key": f"{key}-bad", "fail_times": 99},
        "opts": {"attempts": 2, "backoff": {"type": "fixed", "delay": 10},
                 "jobId": "the-bad-child"},
    }  # fmt: skip
    node = enqueue_flow(tree)
    jobyard_worker([CHILD_QUEUES[0], PARENT_QUEUE])
    jobyard_worker([CHILD_QUEUES[1], PARENT_QUEUE])
    wait_for(lambda: finished(node), timeout=240, message="the parent to fail")

    parent = get_job(PARENT_QUEUE, node.job.id)
    assert parent.state == "failed"
    assert parent.failed_reason.startswith(f"child {CHILD_QUEUES[0]}/the-bad-child failed:")
    assert "RuntimeError: failure 2" in parent.failed_reason
    assert runs(f"{key}-bad") == 2  # both attempts ran
    assert node.job.id not in order(key)  # the parent never ran


@pytest.mark.slow
def test_a_worker_killed_mid_flow_loses_nothing(jobyard_worker):
    key = f"flow-{uuid.uuid4().hex[:8]}"
    # Children that take a little while, so that the kill lands mid-flow and mid-job.
    node = enqueue_flow(big_flow(key, "t-sleep", seconds=0.01))
    victim = jobyard_worker([*CHILD_QUEUES, PARENT_QUEUE])
    jobyard_worker([*CHILD_QUEUES, PARENT_QUEUE])
    wait_for(lambda: runs(key) >= N // 3, timeout=120, message="a third of the children")
    victim.kill()
    jobyard_worker([*CHILD_QUEUES, PARENT_QUEUE])
    wait_for(lambda: finished(node), timeout=240, message="the parent to finish")

    parent = get_job(PARENT_QUEUE, node.job.id)
    assert parent.state == "completed", parent.failed_reason
    assert parent.returnvalue["children"] == N  # every child's value reached the parent
    ran = order(key)
    assert ran.count(node.job.id) == 1 and ran[-1] == node.job.id
    # A child the kill interrupted ran again (found stalled): none was lost.
    assert len(set(ran)) == N + 1
