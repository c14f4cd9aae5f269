"""Flows: a parent waits in `waiting-children`, runs after its last child, reads their
values; a child's final failure fails it (or is ignored). Jobs run in this process
(tasks.testing.run_enqueued) on queues no session worker consumes: catalog, cleanup."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.admin.utils import quote
from django.core.management import CommandError, call_command
from django.urls import reverse

from tasks import InvalidFlow, InvalidJobState, Queue, enqueue_flow, get_job
from tasks.connection import get_redis
from tasks.testing import run_enqueued

PARENT, CHILD = "t-gather.cleanup", "t-echo.catalog"


def leaf(value, **opts):
    return {"name": CHILD, "data": {"value": value}, "opts": opts}


def flow(*children, **opts):
    return {"name": PARENT, "data": {}, "opts": opts, "children": list(children)}


def state(job):
    return get_job(job.queue, job.id).state


def test_it_writes_the_tree_at_once_with_the_parent_waiting_for_children():
    node = enqueue_flow(flow(leaf(1), leaf(2), {**leaf(3), "queue": "catalog"}))
    assert node.job.state == "waiting-children"
    assert [c.job.state for c in node.children] == ["waiting"] * 3
    assert state(node.job) == "waiting-children"
    assert get_job("catalog", node.children[0].job.id).parent == f"cleanup/{node.job.id}"
    assert Queue("cleanup").counts()["waiting-children"] == 1
    assert Queue("catalog").counts()["waiting"] == 3
    listed = Queue("cleanup").get_jobs(["waiting-children"])
    assert [j.id for j in listed] == [node.job.id]


def test_the_parent_runs_after_its_last_child_and_reads_every_value():
    node = enqueue_flow(flow(leaf(1), leaf(2), leaf(39)))
    first, second, third = (c.job for c in node.children)
    run_enqueued(first)
    run_enqueued(second)
    assert state(node.job) == "waiting-children"
    run_enqueued(third)
    assert state(node.job) == "waiting"
    done = run_enqueued(node.job)
    assert done.state == "completed"
    assert done.returnvalue["children"] == 3 and done.returnvalue["sum"] == 42
    assert done.returnvalue["seen"] == sorted(f"catalog/{c.id}" for c in (first, second, third))


def test_a_child_removed_on_completion_still_leaves_its_value_with_the_parent():
    node = enqueue_flow(flow(leaf(5, remove_on_complete=True)))
    run_enqueued(node.children[0].job)
    assert get_job("catalog", node.children[0].job.id) is None
    assert run_enqueued(node.job).returnvalue["sum"] == 5


def test_a_child_failing_for_good_fails_the_parent_naming_it():
    bad = {"name": "t-permanent.catalog", "data": {}}
    node = enqueue_flow(flow(leaf(1), bad))
    run_enqueued(node.children[1].job)
    parent = get_job("cleanup", node.job.id)
    assert parent.state == "failed"
    assert f"catalog/{node.children[1].job.id}" in parent.failed_reason
    assert "this input can never work" in parent.failed_reason
    # The other child still runs; its completion does not revive the parent.
    run_enqueued(node.children[0].job)
    assert state(node.job) == "failed"


def test_a_failure_goes_up_every_level():
    bad = {"name": "t-permanent.catalog", "data": {}}
    middle = {"name": "t-gather.catalog", "data": {}, "children": [bad]}
    node = enqueue_flow(flow(middle))
    run_enqueued(node.children[0].children[0].job)
    assert state(node.children[0].job) == "failed"
    root = get_job("cleanup", node.job.id)
    assert root.state == "failed" and f"catalog/{node.children[0].job.id}" in root.failed_reason


def test_an_ignored_failure_lets_the_parent_run_and_tells_it():
    bad = {"name": "t-permanent.catalog", "data": {},
           "opts": {"ignoreDependencyOnFailure": True}}  # fmt: skip
    node = enqueue_flow(flow(leaf(2), bad))
    run_enqueued(node.children[1].job)
    assert state(node.job) == "waiting-children"
    run_enqueued(node.children[0].job)
    value = run_enqueued(node.job).returnvalue
    assert value["sum"] == 2
    assert list(value["failures"]) == [f"catalog/{node.children[1].job.id}"]


def test_retrying_the_child_that_failed_the_flow_resumes_it():
    bad = {"name": "t-flaky.catalog", "data": {"key": "flaky-flow", "fail_times": 1},
           "opts": {"attempts": 1}}  # fmt: skip
    node = enqueue_flow(flow(bad))
    child = node.children[0].job
    run_enqueued(child)
    assert state(node.job) == "failed"
    get_job("catalog", child.id).retry()
    assert state(node.job) == "waiting-children"
    assert run_enqueued(child).state == "completed"
    assert state(node.job) == "waiting"
    get_redis().delete("flaky-flow:runs", "flaky-flow:order")


def test_nested_levels_run_bottom_up():
    middle = {"name": "t-gather.catalog", "data": {}, "children": [leaf(7)]}
    node = enqueue_flow(flow(middle, leaf(1)))
    mid, grandchild = node.children[0].job, node.children[0].children[0].job
    assert mid.state == "waiting-children"
    run_enqueued(node.children[1].job)
    run_enqueued(grandchild)
    assert state(mid) == "waiting"
    run_enqueued(mid)
    value = run_enqueued(node.job).returnvalue
    assert value["children"] == 2 and value["sum"] == 1  # the middle's value is an object


def test_the_parent_delay_counts_from_its_last_child():
    node = enqueue_flow(flow(leaf(1), delay=60_000))
    assert node.job.state == "waiting-children"
    run_enqueued(node.children[0].job)
    assert state(node.job) == "delayed"


def test_removing_a_pending_child_no_longer_holds_the_parent():
    node = enqueue_flow(flow(leaf(1), leaf(2)))
    run_enqueued(node.children[0].job)
    get_job("catalog", node.children[1].job.id).remove()
    assert state(node.job) == "waiting"


def test_a_root_id_that_exists_returns_that_flow_and_writes_nothing():
    first = enqueue_flow(flow(leaf(1), job_id="flow-once"))
    again = enqueue_flow(flow(leaf(2), leaf(3), job_id="flow-once"))
    assert again.job.id == "flow-once" and again.job.state == "waiting-children"
    assert Queue("catalog").counts()["waiting"] == 1
    assert first.job.id == again.job.id


def test_a_child_id_that_exists_refuses_the_whole_flow():
    enqueue_flow(flow(leaf(1, job_id="taken")))
    with pytest.raises(InvalidJobState, match="catalog/taken"):
        enqueue_flow(flow(leaf(2), leaf(3, job_id="taken"), job_id="second-root"))
    assert get_job("cleanup", "second-root") is None
    assert Queue("catalog").counts()["waiting"] == 1


def test_a_bad_tree_names_each_field_and_writes_nothing():
    tree = flow(
        leaf(1),
        {"name": "no-such-type"},
        {**leaf(2), "queue": "default", "colour": 1},
        {**leaf(3), "opts": {"attempts": 0, "ignoreDependencyOnFailure": "yes"}},
        {"name": "t-typed", "data": {"count": "x"}},
        {**leaf(4), "children": "nope"},
        ignore_dependency_on_failure=True,
    )
    with pytest.raises(InvalidFlow) as caught:
        enqueue_flow(tree)
    fields = {e["field"] for e in caught.value.errors}
    assert fields == {
        "children[1].name", "children[2].queue", "children[2].colour",
        "children[3].opts.attempts", "children[3].opts.ignoreDependencyOnFailure",
        "children[4].data.count", "children[5].children", "opts.ignore_dependency_on_failure",
    }  # fmt: skip
    assert Queue("catalog").counts()["waiting"] == 0
    assert Queue("cleanup").counts()["waiting-children"] == 0


# --- docs/flows.md's examples, on the session worker ---------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_examples_in_docs_flows_md_run(worker):
    page = (Path(__file__).resolve().parent.parent / "docs" / "flows.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    # The first declares the job types: tests/jobapp declares the same, for the worker.
    for number, block in enumerate(blocks[1:], start=2):
        try:
            exec(compile(block, f"docs/flows.md block {number}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"docs/flows.md example {number} failed: {exc!r}") from exc


# --- the CLI: manage.py jobs flow ---------------------------------------------------------


def cli(*args: str, stdin: str | None = None, monkeypatch=None) -> str:
    out = StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", StringIO(stdin))
    call_command("jobs", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_cli_reads_a_tree_from_a_file_or_stdin(tmp_path, monkeypatch):
    path = tmp_path / "tree.json"
    path.write_text(json.dumps(flow(leaf(1, job_id="cli-child"), job_id="cli-root")))
    text = cli("flow", str(path))
    assert text.splitlines() == [
        f"cli-root  cleanup  {PARENT}  waiting-children", f"  cli-child  catalog  {CHILD}  waiting"
    ]  # fmt: skip
    status = cli("status", "cli-root", "--queue", "cleanup")
    assert "child      catalog/cli-child  waiting  (pending)" in status
    reply = json.loads(cli("flow", "-", "--json", stdin=json.dumps(flow(leaf(2))),
                           monkeypatch=monkeypatch))  # fmt: skip
    assert reply["created"] is True and reply["flow"]["state"] == "waiting-children"
    again = json.loads(cli("flow", str(path), "--json"))
    assert again["created"] is False and again["job"]["id"] == "cli-root"


def test_the_cli_names_the_field_at_fault_and_exits_2(tmp_path, monkeypatch):
    with pytest.raises(CommandError) as caught:
        cli("flow", "-", stdin=json.dumps(flow({"name": CHILD, "opts": {"attempts": 0}})),
            monkeypatch=monkeypatch)  # fmt: skip
    assert caught.value.returncode == 2 and "children[0].opts.attempts" in str(caught.value)
    with pytest.raises(CommandError) as caught:
        cli("flow", "-", stdin="{not json", monkeypatch=monkeypatch)
    assert caught.value.returncode == 2 and "not JSON" in str(caught.value)
    with pytest.raises(CommandError) as caught:
        cli("flow", str(tmp_path / "missing.json"))
    assert caught.value.returncode == 2 and "FILE" in str(caught.value)
    assert Queue("cleanup").counts()["waiting-children"] == 0


# --- the admin: the job page's tree, the dashboard's count ---------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_admin_job_page_shows_the_tree_and_the_dashboard_counts_it(admin_client):
    node = enqueue_flow(flow(leaf(1, job_id="adm-child-1"), leaf(2, job_id="adm-child-2"),
                             job_id="adm-root"))  # fmt: skip
    run_enqueued(node.children[0].job)

    def page(queue: str, job_id: str) -> str:
        url = reverse("admin:tasks_jobrecord_change", args=[quote(f"{queue}:{job_id}")])
        return admin_client.get(url).content.decode()

    parent = page("cleanup", "adm-root")
    assert 'id="jy-flow"' in parent and "Children (2)" in parent
    child_url = reverse("admin:tasks_jobrecord_change", args=[quote("catalog:adm-child-1")])
    assert f'<a href="{child_url}">catalog/adm-child-1</a>' in parent
    assert "(processed)" in parent and "(pending)" in parent
    child = page("catalog", "adm-child-2")
    assert "Parent: <a" in child and "cleanup/adm-root" in child
    assert "waiting-children" in child
    dashboard = admin_client.get("/admin/dashboard/").content.decode()
    assert "<b>1</b><span>waiting-children</span>" in dashboard
