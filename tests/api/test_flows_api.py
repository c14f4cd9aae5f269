"""POST /api/v1/flows and a job's flow in GET /api/v1/jobs/{queue}/{id}."""

from __future__ import annotations

import pytest

from tasks import get_job
from tasks.testing import run_enqueued
from tests.api.conftest import assert_error

# The views write outside the test's transaction, as in production (tasks.enqueue defers to
# the commit inside one).
pytestmark = pytest.mark.django_db(transaction=True)
PARENT, CHILD = "t-gather.cleanup", "t-echo.catalog"


def tree(**root_opts):
    return {
        "name": PARENT, "opts": root_opts,
        "children": [
            {"name": CHILD, "data": {"value": 1}, "opts": {"jobId": "api-child-1"}},
            {"name": CHILD, "queue": "catalog", "data": {"value": 2},
             "opts": {"jobId": "api-child-2", "ignoreDependencyOnFailure": True}},
        ],
    }  # fmt: skip


def test_it_creates_a_flow_and_shows_it_on_each_job(api, reader):
    response = api.post_json("/api/v1/flows", tree(jobId="api-root"))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["created"] is True
    flow = body["flow"]
    assert (flow["id"], flow["queue"], flow["state"]) == ("api-root", "cleanup", "waiting-children")
    assert [(c["id"], c["state"], c["children"]) for c in flow["children"]] == [
        ("api-child-1", "waiting", []), ("api-child-2", "waiting", [])
    ]  # fmt: skip

    run_enqueued(get_job("catalog", "api-child-1"))
    parent = reader.get("/api/v1/jobs/cleanup/api-root").json()
    assert parent["state"] == "waiting-children" and parent["parent"] is None
    assert parent["children"] == [
        {"queue": "catalog", "id": "api-child-1", "name": CHILD, "state": "completed",
         "dependency": "processed"},
        {"queue": "catalog", "id": "api-child-2", "name": CHILD, "state": "waiting",
         "dependency": "pending"},
    ]  # fmt: skip
    child = reader.get("/api/v1/jobs/catalog/api-child-2").json()
    assert child["parent"] == {"queue": "cleanup", "id": "api-root", "name": PARENT,
                               "state": "waiting-children"}  # fmt: skip
    assert child["children"] == []
    counts = reader.get("/api/v1/queues/cleanup/stats").json()
    assert counts["waiting-children"] == 1


def test_the_same_root_id_answers_the_existing_job(api):
    assert api.post_json("/api/v1/flows", tree(jobId="api-once")).status_code == 202
    again = api.post_json("/api/v1/flows", {"name": PARENT, "opts": {"jobId": "api-once"}})
    assert again.status_code == 200
    assert again.json()["created"] is False and again.json()["job"]["id"] == "api-once"


def test_a_bad_tree_is_a_422_naming_each_field_and_writes_nothing(api):
    body = tree()
    body["children"][1]["opts"]["attempts"] = "3"
    body["children"].append({"name": "nope"})
    error = assert_error(api.post_json("/api/v1/flows", body), 422, "invalid_flow")
    assert {f["field"] for f in error["fields"]} == {
        "children[1].opts.attempts", "children[2].name"
    }  # fmt: skip
    assert get_job("catalog", "api-child-1") is None


def test_a_child_id_that_exists_is_a_409(api):
    api.post_json("/api/v1/flows", tree())
    error = assert_error(api.post_json("/api/v1/flows", tree()), 409)
    assert "catalog/api-child-1" in error["message"]


def test_a_read_token_cannot_create_a_flow(reader):
    assert_error(reader.post_json("/api/v1/flows", tree()), 403)
