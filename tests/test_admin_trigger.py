"""The trigger form: generated from the job type declarations, validated like the API."""

import re

import pytest

from tasks import InvalidJobData, InvalidJobOptions, Queue, enqueue, get_job
from tasks.registry import job_types

pytestmark = pytest.mark.django_db(transaction=True)
TRIGGER = "/admin/trigger/"


def errors_of(exc_type, call) -> list[str]:
    with pytest.raises(exc_type) as caught:
        call()
    return [f"{e['field']}: {e['message']}" for e in caught.value.errors]


def test_it_offers_every_declared_job_type_with_its_parameters(admin_client):
    page = admin_client.get(TRIGGER).content.decode()
    for name, declared in job_types().items():
        assert f'<option value="{name}"' in page
        for param in declared.json_schema().get("properties", {}):
            assert f"<code>{param}</code>" in page
    assert re.search(r'<option value="ping"[^>]*selected', page)  # the default choice
    # ?type= preselects a type and fills its parameters' template (required ones null).
    page = admin_client.get(f"{TRIGGER}?type=t-typed").content.decode()
    assert re.search(r'<option value="t-typed"[^>]*selected', page)
    assert (
        "{&quot;count&quot;: null, &quot;label&quot;: &quot;x&quot;, &quot;ratio&quot;: 0.5}"
        in page
    )


def test_it_shows_the_apis_validation_errors_on_the_fields(admin_client):
    bad_data = {"count": "many", "extra": 1}
    expected = errors_of(InvalidJobData, lambda: enqueue("t-typed", bad_data))
    page = admin_client.post(
        TRIGGER, {"job_type": "t-typed", "data": '{"count": "many", "extra": 1}'}
    ).content.decode()
    assert "Please correct the errors below." in page
    for message in expected:  # the very messages the API returns
        assert message.replace("'", "&#x27;") in page

    expected = errors_of(InvalidJobOptions, lambda: enqueue("ping", {}, priority=0))[0]
    page = admin_client.post(TRIGGER, {"job_type": "ping", "data": "{}", "priority": "0"})
    assert expected.split(": ", 1)[1] in page.content.decode()
    page = admin_client.post(TRIGGER, {"job_type": "ping", "data": "{}", "job_id": "has space"})
    assert "String should match pattern" in page.content.decode()
    page = admin_client.post(TRIGGER, {"job_type": "ping", "data": "{not json"}).content.decode()
    assert "not valid JSON" in page
    page = admin_client.post(TRIGGER, {"job_type": "ping", "data": "[1]"}).content.decode()
    assert "(root): must be an object" in page
    assert sum(Queue("default").counts().values()) == 0  # nothing was sent


def test_it_sends_the_job_and_follows_it_to_completion(admin_client, worker):
    response = admin_client.post(
        TRIGGER, {"job_type": "ping", "data": "{}", "job_id": "from-the-form", "priority": "2"}
    )
    assert response.status_code == 302
    job = get_job("default", "from-the-form")
    assert job is not None and job.name == "ping" and job.priority == 2
    job.wait_until_finished(timeout=30)
    page = admin_client.get(response["Location"]).content.decode()
    assert 'id="jy-sent-state">completed<' in page and "&quot;pong&quot;: true" in page
    assert 'href="/admin/tasks/jobrecord/default_3Afrom-the-form/change/"' in page
    detail = admin_client.get("/admin/tasks/jobrecord/default_3Afrom-the-form/change/")
    assert detail.status_code == 200 and "pong" in detail.content.decode()


def test_a_delayed_job_page_refreshes_until_it_finishes(admin_client):
    response = admin_client.post(TRIGGER, {"job_type": "ping", "data": "{}", "delay": "60000"})
    page = admin_client.get(response["Location"]).content.decode()
    assert 'id="jy-sent-state">delayed<' in page and 'http-equiv="refresh"' in page


def test_it_refuses_a_schedule_that_would_never_fire(admin_client):
    data = '{"key": "k", "target": "ping", "pattern": "0 0 30 2 *"}'
    page = admin_client.post(TRIGGER, {"job_type": "schedule-recurring", "data": data})
    assert "pattern: &#x27;0 0 30 2 *&#x27; never fires" in page.content.decode()
    assert sum(Queue("default").counts().values()) == 0
