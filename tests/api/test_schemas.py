"""Every answer goes through its model (tasks.api.schemas), the one the OpenAPI document is
generated from: a key the model lacks, a key it requires gone, or a value of another type
is a loud 500, never a quiet drift from the document."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tasks import enqueue
from tasks.api import schemas, sse, views
from tasks.api.base import READ, api_view
from tasks.events import Event
from tasks.job import Job
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job() -> Job:
    return enqueue("t-echo.default", {"value": "é"}, delay=60_000)  # stays put: delayed


def test_a_job_answers_as_its_model_writes_it(api, job):
    response = api.get(f"/api/v1/jobs/default/{job.id}")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {field.alias for field in schemas.JobDetail.model_fields.values()}
    assert body["data"] == {"value": "é"} and body["state"] == "delayed"


def test_a_key_job_to_dict_grew_without_the_model_is_a_500(api, job, monkeypatch):
    to_dict = Job.to_dict
    monkeypatch.setattr(Job, "to_dict", lambda self: {**to_dict(self), "owner": "someone"})
    assert_error(api.get(f"/api/v1/jobs/default/{job.id}"), 500, "internal_error")
    assert_error(api.get("/api/admin/jobs/status", {"jobId": job.id}), 500, "internal_error")
    assert_error(api.get("/api/v1/queues/default/jobs"), 500, "internal_error")
    with pytest.raises(ValidationError, match="owner"):
        schemas.dump(schemas.Job, job.to_dict())


def test_a_key_gone_or_a_value_of_another_type_is_a_500_too(api, job, monkeypatch):
    to_dict = Job.to_dict
    monkeypatch.setattr(Job, "to_dict", lambda self: {**to_dict(self), "attemptsMade": "0"})
    assert_error(api.get(f"/api/v1/jobs/default/{job.id}"), 500, "internal_error")  # strict
    gone = {k: v for k, v in to_dict(job).items() if k != "worker"}
    with pytest.raises(ValidationError, match="worker"):
        schemas.dump(schemas.Job, gone)


def test_a_key_the_metrics_grew_without_the_model_is_a_500(api, monkeypatch):
    real = views.all_queue_metrics
    monkeypatch.setattr(views, "all_queue_metrics",
                        lambda: {q: {**m, "backlogAge": 1} for q, m in real().items()})  # fmt: skip
    assert_error(api.get("/api/v1/queues"), 500, "internal_error")
    counts = {q: {**m["counts"], "stuck": 0} for q, m in real().items()}
    with pytest.raises(ValidationError, match="stuck"):
        schemas.dump(schemas.Counts, counts["default"])


def test_a_key_a_worker_grew_without_the_model_is_a_500(api, monkeypatch):
    worker = {"name": "w@h", "host": "h", "pid": 1, "queues": ["default"], "concurrency": 2,
              "running": 0, "paused": [], "lastHeartbeat": 1, "startedAt": 1}  # fmt: skip
    monkeypatch.setattr(views, "get_workers", lambda: [worker])
    assert api.get("/api/v1/workers").json() == {"workers": [worker]}
    monkeypatch.setattr(views, "get_workers", lambda: [{**worker, "version": "2"}])
    assert_error(api.get("/api/v1/workers"), 500, "internal_error")


def test_an_error_with_a_key_its_model_lacks_becomes_the_plain_500():
    from tasks.api.errors import ApiError

    response = ApiError(422, "invalid_request", "bad", hint="unknown to the model").response()
    assert response.status_code == 500
    assert json.loads(response.content)["error"]["code"] == "internal_error"
    fine = ApiError(404, "queue_not_found", "no", known=["default"]).response()
    assert json.loads(fine.content) == {
        "error": {"code": "queue_not_found", "message": "no", "known": ["default"]}
    }


def test_a_view_that_answers_without_a_model_is_a_500(rf):
    @api_view({"GET": READ})
    def bare(request):
        return {"jobs": []}

    request = rf.get("/api/v1/bare")
    request.user = type("Staff", (), {"is_authenticated": True, "is_active": True,
                                      "is_staff": True})()  # fmt: skip
    response = bare(request)
    assert response.status_code == 500
    assert json.loads(response.content)["error"]["code"] == "internal_error"


def test_stream_events_are_written_through_their_model():
    event = Event("default", "1700000000000-0", "failed", "j1",
                  {"failedReason": "boom", "attemptsMade": "2"})  # fmt: skip
    data = json.loads(sse._message("failed", schemas.JobEvent, sse.event_data(event)).split(
        "data: ", 1)[1])  # fmt: skip
    assert data == {"queue": "default", "event": "failed", "jobId": "j1",
                    "timestamp": 1700000000000, "failedReason": "boom", "attemptsMade": 2}  # fmt: skip
    odd = Event("default", "1700000000000-1", "failed", "j1", {"shard": "3"})
    with pytest.raises(ValidationError, match="shard"):
        schemas.dump(schemas.JobEvent, sse.event_data(odd))
