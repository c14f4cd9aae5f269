"""Removing a flow's parent removes its pending children, and theirs (BullMQ's
removeChildren), from the Python API, the HTTP API, the CLI and the admin; an active child
is left to finish; removing a child works as before (tests/test_flows.py). Jobs run in this
process (tasks.testing.run_enqueued) on queues no session worker consumes: catalog,
cleanup; the active child on a real worker of `notifications`."""

from __future__ import annotations

import json
import uuid
from io import StringIO

import pytest
from django.contrib.admin.utils import quote
from django.core.management import call_command
from django.urls import reverse

from tasks import Queue, enqueue, enqueue_flow, get_job
from tasks.connection import get_redis
from tasks.events import recent_job_event
from tasks.testing import run_enqueued
from tests.api.conftest import api, make_token  # noqa: F401  (fixtures)
from tests.conftest import drain_archive, runs, wait_for

PARENT, CHILD = "t-gather.cleanup", "t-echo.catalog"


def leaf(value, **opts):
    return {"name": CHILD, "data": {"value": value}, "opts": opts}


def flow(*children, **opts):
    return {"name": PARENT, "data": {}, "opts": opts, "children": list(children)}


def ref(job) -> str:
    return f"{job.queue}/{job.id}"


def gone(job) -> bool:
    return get_job(job.queue, job.id) is None


def test_removing_a_parent_removes_its_pending_children_and_theirs():
    middle = {"name": "t-gather.catalog", "data": {}, "children": [leaf(7), leaf(8)]}
    node = enqueue_flow(flow(leaf(1), leaf(2, delay=60_000), middle))
    done, delayed, mid = (c.job for c in node.children)
    grandchildren = [c.job for c in node.children[2].children]
    run_enqueued(done)
    run_enqueued(grandchildren[0])  # the middle now waits for one grandchild only
    before = Queue("catalog").counts()

    removed = get_job("cleanup", node.job.id).remove()

    assert sorted(removed) == sorted(ref(j) for j in (delayed, mid, grandchildren[1]))
    assert all(gone(j) for j in (node.job, delayed, mid, grandchildren[1]))
    # Children that finished are history: they stay, under their own retention.
    assert get_job("catalog", done.id).state == "completed"
    assert get_job("catalog", grandchildren[0].id).state == "completed"
    after = Queue("catalog").counts()
    assert after["delayed"] == before["delayed"] - 1
    assert after["waiting-children"] == before["waiting-children"] - 1
    assert after["waiting"] == before["waiting"] - 1
    assert not get_redis().keys(f"*{node.job.id}*") and not get_redis().keys(f"*{mid.id}*")
    # Each one's end is on its queue's stream, for the recorder (the archive) and waiters.
    for job in (node.job, delayed, mid, grandchildren[1]):
        assert recent_job_event(job.queue, job.id, ["removed"]) is not None


def test_removing_a_child_still_only_releases_its_parent():
    node = enqueue_flow(flow(leaf(1), leaf(2)))
    run_enqueued(node.children[0].job)
    assert get_job("catalog", node.children[1].job.id).remove() == []
    assert get_job("cleanup", node.job.id).state == "waiting"
    assert run_enqueued(node.job).returnvalue["sum"] == 1


def test_removing_a_job_outside_a_flow_removes_it_alone():
    job = enqueue(CHILD, {"value": 3})
    assert get_job("catalog", job.id).remove() == []
    assert gone(job)


@pytest.mark.django_db(transaction=True)
def test_the_api_and_the_cli_name_the_children_removed(api):  # noqa: F811
    node = enqueue_flow(flow(leaf(1), leaf(2)))
    answer = api.delete(f"/api/v1/jobs/cleanup/{node.job.id}")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["removed"] is True
    assert sorted(body["childrenRemoved"]) == sorted(ref(c.job) for c in node.children)
    plain = enqueue(CHILD, {"value": 1})
    assert "childrenRemoved" not in api.delete(f"/api/v1/jobs/catalog/{plain.id}").json()

    node = enqueue_flow(flow(leaf(3)))
    out = StringIO()
    call_command("jobs", "remove", node.job.id, "--queue", "cleanup", stdout=out)
    assert out.getvalue().strip() == (
        f"removed {node.job.id} from cleanup and 1 pending child job(s) of its flow"
    )
    assert gone(node.children[0].job)
    node = enqueue_flow(flow(leaf(4)))
    out = StringIO()
    call_command("jobs", "remove", node.job.id, "--queue", "cleanup", "--json", stdout=out)
    assert json.loads(out.getvalue())["childrenRemoved"] == [ref(node.children[0].job)]


@pytest.mark.django_db(transaction=True)
def test_the_admin_removes_a_parent_with_its_pending_children(admin_client):
    node = enqueue_flow(flow(leaf(1), leaf(2)))
    drain_archive()  # the parent's archive row, which the admin's page acts on
    url = reverse("admin:tasks_jobrecord_operate", args=[quote(f"cleanup:{node.job.id}")])
    response = admin_client.post(url, {"action": "remove"}, follow=True)
    assert "with 2 pending child job(s) of its flow" in response.content.decode()
    assert all(gone(c.job) for c in node.children)


@pytest.mark.slow
def test_an_active_child_is_left_to_finish_and_the_removed_ones_never_run(jobyard_worker):
    key = f"rm-{uuid.uuid4().hex[:8]}"
    sleeper = {"name": "t-sleep.notifications", "data": {"seconds": 3, "key": f"{key}-sleep"},
               "opts": {"jobId": f"{key}-sleeper"}}  # fmt: skip
    waiting = [{"name": "t-record.notifications", "data": {"key": key}} for _ in range(3)]
    node = enqueue_flow({"name": PARENT, "data": {}, "children": [sleeper, *waiting]})
    # One at a time: the sleeper first, the rest wait. A solo worker answers no ping while
    # it runs a job, so this does not wait for it to be ready.
    jobyard_worker(["notifications"], wait=False)
    wait_for(lambda: get_job("notifications", f"{key}-sleeper").state == "active",
             timeout=60, message="the sleeper to start")  # fmt: skip

    removed = get_job("cleanup", node.job.id).remove()

    assert sorted(removed) == sorted(ref(c.job) for c in node.children[1:])
    # The active child was not removed: it finishes, and its end finds no parent to tell.
    wait_for(lambda: get_job("notifications", f"{key}-sleeper").state == "completed",
             timeout=60, message="the sleeper to complete")  # fmt: skip
    # A job sent after the removed ones runs after their messages were read: none ran.
    after = enqueue("t-record.notifications", {"key": f"{key}-after"})
    assert after.wait_until_finished(timeout=60) == 1
    assert runs(key) == 0 and gone(node.job)
