"""Lean messages (tasks/messages.py): a waiting job's broker entry is a token `queue/id`,
its Celery message built from its hash as a worker takes it; its hash stays a listpack.

Full messages (a release before lean messages wrote them, or JOBYARD_LEAN_MESSAGES off) are
still consumed: a rolling deploy reads both forms."""

from __future__ import annotations

import json
import uuid

import pytest

from project.celery import app
from tasks import Queue, enqueue, get_job, keys, messages, scripts
from tasks.connection import get_redis
from tasks.worker.claims import CLAIM_HEADER
from tests.conftest import runs, wait_for

QUEUE = "webhooks"  # no shared test worker consumes it
NORMAL = keys.broker_list(QUEUE, 4)
ECHO = f"t-echo.{QUEUE}"
#: Options as teams set them: what the hash keeps of them stays short (options.stored).
OPTIONS = {"attempts": 5, "backoff": {"type": "exponential", "delay": 5000, "factor": 5},
           "timeout": 60_000}  # fmt: skip


@pytest.fixture
def lean(settings):
    """lean(False): scripts write full messages from here on, as a release before lean
    messages did; lean(True) goes back. The settings fixture restores the rest."""

    def switch(on: bool) -> None:
        settings.JOBYARD = {**settings.JOBYARD, "LEAN_MESSAGES": on}
        scripts.source.cache_clear()
        scripts._script.cache_clear()
        scripts.take_sha.loaded = False

    yield switch
    switch(True)


def test_a_waiting_jobs_entry_is_its_token_and_its_hash_a_listpack():
    job = enqueue(ECHO, {"value": "x" * 40}, **OPTIONS)
    client = get_redis()
    assert client.lrange(NORMAL, 0, -1) == [f"{QUEUE}/{job.id}".encode()]
    hash_key = keys.job(QUEUE, job.id)
    # Under Redis's default hash-max-listpack-value (64): no value longer than that.
    assert client.config_get("hash-max-listpack-value")["hash-max-listpack-value"] == "64"
    assert client.object("encoding", hash_key) == b"listpack"
    assert client.memory_usage(hash_key) < 500  # as a hashtable: about 1,000
    # What the hash keeps is short; what everyone reads is every option, as before.
    assert json.loads(client.hget(hash_key, "opts")) == {
        "attempts": 5, "backoff": {"factor": 5.0}, "timeout": 60000,
    }  # fmt: skip
    shown = get_job(QUEUE, job.id).opts
    assert shown == job.opts and shown["backoff"] == {
        "type": "exponential", "delay": 5000, "factor": 5.0, "jitter": 0.0,
    }  # fmt: skip
    assert shown["delay"] == 0 and shown["timeout"] == 60000


def _deliver_one() -> dict:
    """One message through Jobyard's channel, as a worker's consumer receives it."""
    received = []
    with app.connection_for_read() as conn:
        channel = conn.channel()
        channel.basic_consume(QUEUE, no_ack=False, callback=received.append, consumer_tag="t")
        channel.client.connection = channel.client.connection_pool.get_connection()
        channel._brpop_start()
        channel._brpop_read()
        message = received[0]
        payload = {"body": message.body, "headers": dict(message.headers),
                   "properties": dict(message.properties)}  # fmt: skip
        message.ack()
        channel.close()
    return payload


def test_a_token_is_delivered_as_the_full_message_it_stands_for(lean):
    lean(False)
    job = enqueue(ECHO, {"value": 1}, **OPTIONS)
    client = get_redis()
    full = json.loads(client.lpop(NORMAL))  # as a release before lean messages wrote it
    assert full["headers"]["id"] == job.id and full["properties"]["delivery_tag"].endswith("#1")
    lean(True)
    client.lpush(NORMAL, messages.token(QUEUE, job.id))  # what publish() writes now
    delivered = _deliver_one()
    claim = delivered["headers"].pop(CLAIM_HEADER)
    assert claim["token"] and get_job(QUEUE, job.id).state == "active"
    assert delivered["body"] == full["body"].encode()
    assert delivered["headers"] == full["headers"]
    tag = delivered["properties"].pop("delivery_tag")
    assert tag.startswith(f"{job.id}#") and tag != full["properties"].pop("delivery_tag")
    for name, value in full["properties"].items():
        assert delivered["properties"][name] == value, name


def test_a_task_sent_the_celery_way_keeps_its_message_and_the_list_a_token():
    sent = app.send_task(ECHO, kwargs={"value": 5}, headers={"team": "billing"})
    client = get_redis()
    entries = [e for name in keys.broker_lists(QUEUE) for e in client.lrange(name, 0, -1)]
    assert entries == [f"{QUEUE}/{sent.id}".encode()]
    kept = json.loads(client.hget(keys.job(QUEUE, sent.id), "msg"))
    assert kept["headers"]["team"] == "billing"
    delivered = _deliver_one()
    assert delivered["headers"]["team"] == "billing" and delivered["headers"]["id"] == sent.id
    assert delivered["properties"]["delivery_tag"] != kept["properties"]["delivery_tag"]


def test_read_resolves_a_token_for_a_consumer_without_take_and_skips_a_removed_job():
    job = enqueue(ECHO, {}, priority=2)
    client = get_redis()
    entry = client.lpop(keys.broker_list(QUEUE, 1))
    message = messages.read(entry, client)
    assert (message["headers"]["task"], message["headers"]["id"]) == (ECHO, job.id)
    assert message["properties"]["priority"] == 1
    assert message["properties"]["delivery_info"]["routing_key"] == QUEUE
    assert messages.read(b'{"headers": {}}', client) == {"headers": {}}
    get_job(QUEUE, job.id).remove()
    assert messages.read(entry, client) is None
    assert messages.parse_token(b"not-a-token") is None


@pytest.mark.slow
def test_a_worker_consumes_tokens_and_full_messages_left_by_the_previous_release(
    lean, start_worker
):
    """A rolling deploy: full messages written before the upgrade wait beside new tokens."""
    key = f"lean-{uuid.uuid4().hex[:6]}"
    lean(False)
    old = [enqueue(f"t-record.{QUEUE}", {"key": key}) for _ in range(3)]
    old_sent = app.send_task(f"t-record.{QUEUE}", kwargs={"key": key})
    lean(True)
    new = [enqueue(f"t-record.{QUEUE}", {"key": key}) for _ in range(3)]
    new_sent = app.send_task(f"t-record.{QUEUE}", kwargs={"key": key})
    client = get_redis()
    entries = [e for name in keys.broker_lists(QUEUE) for e in client.lrange(name, 0, -1)]
    assert sum(e.startswith(b"{") for e in entries) == 4 and len(entries) == 8
    start_worker([QUEUE])
    wait_for(lambda: runs(key) == 8, timeout=60, message="every job run")
    ids = [j.id for j in (*old, *new)] + [old_sent.id, new_sent.id]
    wait_for(lambda: all(get_job(QUEUE, i).state == "completed" for i in ids), timeout=30)
    assert all(get_job(QUEUE, i).attempts_made == 1 for i in ids)
    assert Queue(QUEUE).counts()["waiting"] == 0
    assert not any(client.llen(name) for name in keys.broker_lists(QUEUE))
