"""The consumer's take.lua (tasks/transport.py): pop and claim as one step.

The script tests call take.lua on real Redis as the transport does; the last test drains a
backlog with a real worker and checks kombu's unacked bookkeeping is not used for jobs.
"""

from __future__ import annotations

import json
import uuid

from project.celery import app
from tasks import Queue, enqueue, get_job, scripts
from tasks.connection import get_redis
from tasks.transport import MAX_POPS, take_args
from tests.conftest import runs, wait_for

QUEUE = "webhooks"  # no test worker consumes it unless a test starts one
LISTS = [QUEUE if step == 0 else f"{QUEUE}:{step}" for step in range(10)]
NORMAL = f"{QUEUE}:4"  # the list of normal priority


def take(worker: str = "node@host:1") -> tuple[str, list | None]:
    token = uuid.uuid4().hex
    return token, scripts.run("take", *take_args(LISTS, [QUEUE], worker, token))


def unacked_ids() -> set[str]:
    """The ids in the messages kombu's unacked hash holds (shared with other tests' workers)."""
    return {json.loads(v)[0]["headers"]["id"] for v in get_redis().hvals("unacked")}


def test_take_claims_a_job_before_its_message_leaves_redis():
    job = enqueue(f"t-echo.{QUEUE}", {"value": 7})
    token, reply = take()
    key, raw, name, data, opts, attempts_made, attempts, created = reply
    message = json.loads(raw)
    assert key == NORMAL.encode()
    assert message["headers"]["id"] == job.id
    assert (name, json.loads(data), int(attempts_made)) == (
        f"t-echo.{QUEUE}".encode(),
        {"value": 7},
        0,
    )
    taken = get_job(QUEUE, job.id)
    assert taken.state == "active" and taken.worker == "node@host:1"
    client = get_redis()
    assert client.get(f"{scripts.prefix()}{QUEUE}:lock:{job.id}").decode() == token
    # No kombu unacked entry: the job's lock covers a crash from here on.
    assert job.id not in unacked_ids()
    assert take()[1] is None  # every list is empty


def test_take_drops_copies_that_must_not_run_and_delivers_the_next():
    first = enqueue(f"t-echo.{QUEUE}", {"value": 1})
    client = get_redis()
    copy = client.lindex(NORMAL, 0)
    take()  # first is now active
    client.lpush(NORMAL, copy)  # a second copy of its message (a redelivery)
    removed = enqueue(f"t-echo.{QUEUE}", {"value": 2})
    get_job(QUEUE, removed.id).remove()  # its message is still in the list
    nxt = enqueue(f"t-echo.{QUEUE}", {"value": 3})
    _, reply = take()
    assert json.loads(reply[1])["headers"]["id"] == nxt.id
    assert get_job(QUEUE, first.id).state == "active" and get_job(QUEUE, removed.id) is None
    assert client.llen(NORMAL) == 0


def test_take_parks_a_paused_queues_jobs_and_answers_empty_handed():
    queue = Queue(QUEUE)
    job = enqueue(f"t-echo.{QUEUE}", {})
    queue.pause()  # after its message was published
    assert take()[1] is None  # popped and parked; nothing else to deliver
    assert get_job(QUEUE, job.id).state == "paused" and queue.counts()["paused"] == 1
    queue.resume()
    _, reply = take()
    assert json.loads(reply[1])["headers"]["id"] == job.id


def test_take_stops_after_max_pops_of_copies_and_leaves_the_rest():
    job = enqueue(f"t-echo.{QUEUE}", {})
    client = get_redis()
    copy = client.lindex(NORMAL, 0)
    take()
    client.lpush(NORMAL, *[copy] * (MAX_POPS + 5))
    assert take()[1] == []  # a bounded script: it gives the loop back
    assert client.llen(NORMAL) == 5
    assert get_job(QUEUE, job.id).state == "active"


def test_take_gives_a_celery_message_the_unacked_entry_kombu_would_write():
    result = app.send_task(f"t-echo.{QUEUE}", kwargs={"value": 5})
    _, reply = take()
    key, raw = reply
    message = json.loads(raw)
    assert message["headers"]["id"] == result.id
    tag = message["properties"]["delivery_tag"]
    stored, exchange, routing_key = json.loads(get_redis().hget("unacked", tag))
    assert stored == message and routing_key == QUEUE and exchange == message[
        "properties"]["delivery_info"]["exchange"]  # fmt: skip
    assert get_redis().zscore("unacked_index", tag) is not None
    get_redis().hdel("unacked", tag)
    get_redis().zrem("unacked_index", tag)


def test_take_respects_priority_lists_in_order():
    low = enqueue(f"t-echo.{QUEUE}", {}, priority=9)
    high = enqueue(f"t-echo.{QUEUE}", {}, priority=1)
    normal = enqueue(f"t-echo.{QUEUE}", {})
    ids = [json.loads(take()[1][1])["headers"]["id"] for _ in range(3)]
    assert ids == [high.id, normal.id, low.id]


def test_a_worker_runs_a_backlog_without_kombu_unacked_entries(start_worker):
    """Drained from a backlog (take.lua) and idle (BRPOP, then claim.lua) alike."""
    key = f"backlog-{uuid.uuid4().hex[:6]}"
    backlog = [enqueue(f"t-sleep.{QUEUE}", {"seconds": 1, "key": key}) for _ in range(3)]
    worker = start_worker([QUEUE], pool="solo", wait=False)
    seen_active = wait_for(
        lambda: [j for j in backlog if get_job(QUEUE, j.id).state == "active"], message="a start"
    )
    running = get_job(QUEUE, seen_active[0].id)
    assert running.worker.startswith(f"{worker.name}:")
    assert not unacked_ids() & {j.id for j in backlog}
    wait_for(lambda: runs(key) == 3 and Queue(QUEUE).counts()["completed"] == 3, message="drain")
    # Idle now: the next job arrives during a BRPOP and is claimed by claim.lua.
    late = enqueue(f"t-echo.{QUEUE}", {"value": "late"})
    assert late.wait_until_finished(timeout=30) == "late"
    # A message sent the Celery way is adopted, run and acked as kombu acks.
    sent = app.send_task(f"t-record.{QUEUE}", kwargs={"key": key})
    wait_for(lambda: runs(key) == 4, message="the Celery-style job")
    wait_for(lambda: sent.id not in unacked_ids(), message="its ack")
    assert all(get_job(QUEUE, j.id).attempts_made == 1 for j in backlog)
