"""The consumer's take.lua (tasks/worker/transport.py): pop and claim as one step.

Script tests call take.lua on real Redis as the transport does; channel tests drive the
transport's channel as a worker's consumer would (take, deliver, close); worker tests run
real workers and check kombu's unacked bookkeeping is not used for jobs, and that stopping
a busy worker strands nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from queue import Empty

import pytest
from django.conf import settings
from kombu import Connection

from project.celery import app
from tasks import Queue, enqueue, enqueue_bulk, get_job, keys, messages, scripts
from tasks.connection import get_redis
from tasks.scripts import MAX_POPS, Completion
from tasks.worker.claims import claim_header
from tests.conftest import runs, wait_for

QUEUE = "webhooks"  # no test worker consumes it unless a test starts one
LISTS = keys.broker_lists(QUEUE)
NORMAL = keys.broker_list(QUEUE, 4)  # the list of normal priority


def take(
    worker: str = "node@host:1", done: list[Completion] = ()
) -> tuple[str, scripts.Taken | None]:
    """take.lua as the transport calls it: None when the lists are empty; the flags of
    `done` are checked to be all 1."""
    token = uuid.uuid4().hex
    taken = scripts.take(LISTS, [QUEUE], worker, token, done=done)
    assert taken.done == "1" * len(done)
    return token, None if taken.empty else taken


def taken_id(taken: scripts.Taken) -> str:
    """The job id of take.lua's message: a job's lean token (`queue/id`) or a full message."""
    address = messages.parse_token(taken.message)
    return address[1] if address else json.loads(taken.message)["headers"]["id"]


def unacked_ids() -> set[str]:
    """The ids in the messages kombu's unacked hash holds (shared with other tests' workers)."""
    return {json.loads(v)[0]["headers"]["id"] for v in get_redis().hvals("unacked")}


def test_take_claims_a_job_before_its_message_leaves_redis():
    job = enqueue(f"t-echo.{QUEUE}", {"value": 7})
    token, taken = take()
    assert taken.broker_list == NORMAL
    assert taken_id(taken) == job.id
    claim = taken.claim
    assert (claim.name, json.loads(claim.data), claim.attempts_made) == (
        f"t-echo.{QUEUE}",
        {"value": 7},
        0,
    )
    taken = get_job(QUEUE, job.id)
    assert taken.state == "active" and taken.worker == "node@host:1"
    client = get_redis()
    assert client.get(keys.lock(QUEUE, job.id)).decode() == token
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
    assert taken_id(take()[1]) == nxt.id
    assert get_job(QUEUE, first.id).state == "active" and get_job(QUEUE, removed.id) is None
    assert client.llen(NORMAL) == 0


def test_take_parks_a_paused_queues_jobs_and_answers_empty_handed():
    queue = Queue(QUEUE)
    job = enqueue(f"t-echo.{QUEUE}", {})
    queue.pause()  # after its message was published
    assert take()[1] is None  # popped and parked; nothing else to deliver
    assert get_job(QUEUE, job.id).state == "paused" and queue.counts()["paused"] == 1
    queue.resume()
    assert taken_id(take()[1]) == job.id


def test_take_stops_after_max_pops_of_copies_and_leaves_the_rest():
    job = enqueue(f"t-echo.{QUEUE}", {})
    client = get_redis()
    copy = client.lindex(NORMAL, 0)
    take()
    client.lpush(NORMAL, *[copy] * (MAX_POPS + 5))
    assert take()[1].message is None  # a bounded script: it gives the loop back
    assert client.llen(NORMAL) == 5
    assert get_job(QUEUE, job.id).state == "active"


def test_a_task_sent_the_celery_way_is_a_job_from_the_moment_it_is_sent():
    result = app.send_task(f"t-echo.{QUEUE}", kwargs={"value": 5})
    assert get_job(QUEUE, result.id).state == "waiting"
    _, taken = take()
    assert taken.claim is not None and taken.claim.data == '{"value":5}'
    assert get_job(QUEUE, result.id).state == "active"
    assert get_redis().hlen("unacked") == 0  # the job's lock stands for kombu's entry


def test_take_gives_a_foreign_message_the_unacked_entry_kombu_would_write():
    """A message no registering transport sent (a stock kombu producer): no job to claim."""
    options = app.conf.broker_transport_options
    # By path: in this process redis:// names Jobyard's transport (project/broker.py).
    stock = "kombu.transport.redis:Transport"
    with Connection(app.conf.broker_url, transport=stock, transport_options=options) as conn:
        result = app.send_task(f"t-echo.{QUEUE}", kwargs={"value": 5}, producer=conn.Producer())
    _, taken = take()
    assert taken.claim is None  # no job to claim yet
    message = json.loads(taken.message)
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
    ids = [taken_id(take()[1]) for _ in range(3)]
    assert ids == [high.id, normal.id, low.id]


def test_a_worker_runs_a_backlog_without_kombu_unacked_entries(start_worker, tmp_path):
    """Drained from a backlog (take.lua) and idle (woken by a bell, then take.lua) alike."""
    key = f"backlog-{uuid.uuid4().hex[:6]}"
    backlog = [enqueue(f"t-sleep.{QUEUE}", {"seconds": 1, "key": key}) for _ in range(3)]
    log = tmp_path / "worker.log"
    worker = start_worker(
        [QUEUE],
        pool="solo",
        wait=False,
        output=log,
        env={"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"},
    )
    seen_active = wait_for(
        lambda: [j for j in backlog if get_job(QUEUE, j.id).state == "active"], message="a start"
    )
    running = get_job(QUEUE, seen_active[0].id)
    assert running.worker.startswith(f"{worker.name}:")
    assert not unacked_ids() & {j.id for j in backlog}
    wait_for(lambda: runs(key) == 3 and Queue(QUEUE).counts()["completed"] == 3, message="drain")
    # Idle now: the next job rings the bell the worker blocks on, and take.lua takes it.
    late = enqueue(f"t-echo.{QUEUE}", {"value": "late"})
    assert late.wait_until_finished(timeout=30) == "late"
    # A message sent the Celery way is adopted, run and acked as kombu acks.
    sent = app.send_task(f"t-record.{QUEUE}", kwargs={"key": key})
    wait_for(lambda: runs(key) == 4, message="the Celery-style job")
    wait_for(lambda: sent.id not in unacked_ids(), message="its ack")
    assert all(get_job(QUEUE, j.id).attempts_made == 1 for j in backlog)
    # A solo worker's completions ride on its next take; each is still logged, once.
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    completed = [line["job_id"] for line in lines if line["event"] == "job_complete"]
    assert sorted(completed) == sorted([*(j.id for j in backlog), late.id, sent.id])
    assert all(line["duration_ms"] >= 0 for line in lines if line["event"] == "job_complete")


def test_take_completes_the_jobs_a_solo_worker_ran_before_it_pops():
    job = enqueue(f"t-echo.{QUEUE}", {})
    token, _ = take()
    nxt = enqueue(f"t-echo.{QUEUE}", {})
    _, taken = take(done=[Completion(QUEUE, job.id, token, '"ok"', 100, 0)])
    assert taken_id(taken) == nxt.id
    done = get_job(QUEUE, job.id)
    assert (done.state, done.returnvalue, done.attempts_made) == ("completed", "ok", 1)
    # A job whose lock went elsewhere is not completed by a late take: its flag says so.
    stale = Completion(QUEUE, nxt.id, "not-the-token", '"late"', 100, 0)
    taken = scripts.take(LISTS, [QUEUE], "w:1", "t", done=[stale])
    assert (taken.done, taken.empty) == ("0", True) and get_job(QUEUE, nxt.id).state == "active"


def test_a_warm_shutdown_mid_backlog_leaves_no_job_claimed_and_not_run(start_worker):
    """The consumer asks for the next job while one runs; stopping then must not strand it."""
    key = f"stop-{uuid.uuid4().hex[:6]}"
    left = [enqueue(f"t-sleep.{QUEUE}", {"seconds": 0.05, "key": key}).id for _ in range(200)]
    done = 0
    for pool in ("solo", "prefork"):
        worker = start_worker([QUEUE], pool=pool)
        wait_for(lambda d=done: runs(key) >= d + 20, message="a busy worker")
        worker.stop()
        jobs = [get_job(QUEUE, job_id) for job_id in left]
        assert {j.state for j in jobs} == {"completed", "waiting"}, pool  # none left active
        assert [
            (j.state, j.attempts_made, j.stalled_count)
            for j in jobs
            if j.stalled_count or j.attempts_made != (j.state == "completed")
        ] == []
        done += sum(j.state == "completed" for j in jobs)
        assert runs(key) == done  # every start ran to completion
        left = [j.id for j in jobs if j.state == "waiting"]
    assert len(left) == 200 - done and Queue(QUEUE).counts()["waiting"] == len(left)


def _consumer(conn, callback=None):
    """A channel of tasks.transport consuming QUEUE, as a worker's consumer would."""
    channel = conn.channel()
    channel.basic_consume(QUEUE, no_ack=False, callback=callback or _never, consumer_tag="t")
    client = channel.client
    client.connection = client.connection_pool.get_connection()
    return channel


def _never(message) -> None:
    raise AssertionError(f"delivered to a closing consumer: {message.headers['id']}")


def _close_mid_take() -> None:
    """A consumer sends take.lua and is closed before it reads the reply."""
    with app.connection_for_read() as conn:
        channel = _consumer(conn)
        channel._brpop_start()
        channel.close()


def test_a_job_received_but_never_started_goes_back_when_its_consumer_closes():
    """A stopping prefork worker can hold a message it did not hand to a pool process."""
    job = enqueue(f"t-echo.{QUEUE}", {})
    received = []
    with app.connection_for_read() as conn:
        channel = _consumer(conn, received.append)
        channel._brpop_start()
        channel._brpop_read()
        assert received[0].headers["id"] == job.id and get_job(QUEUE, job.id).state == "active"
        channel.close()  # never acked, never started
    back = get_job(QUEUE, job.id)
    assert (back.state, back.attempts_made, back.stalled_count) == ("waiting", 0, 0)
    assert taken_id(take()[1]) == job.id


def test_a_closing_consumer_hands_back_what_it_took_unrun():
    job = enqueue(f"t-echo.{QUEUE}", {})
    behind = enqueue(f"t-echo.{QUEUE}", {})
    _close_mid_take()
    back = get_job(QUEUE, job.id)
    assert (back.state, back.attempts_made, back.stalled_count, back.worker) == (
        "waiting",
        0,
        0,
        None,
    )
    assert not get_redis().exists(keys.lock(QUEUE, job.id))
    taken = [taken_id(take()[1]) for _ in range(2)]
    assert taken == [job.id, behind.id]  # put back at the front
    sent = app.send_task(f"t-echo.{QUEUE}", kwargs={})
    _close_mid_take()
    assert sent.id not in unacked_ids()
    assert taken_id(take()[1]) == sent.id
    get_redis().delete("unacked", "unacked_index")


def test_a_claim_held_too_long_before_it_runs_is_checked_first():
    from tasks.registry import get_job_type
    from tasks.worker.runner import execute

    lock_s = settings.JOBYARD["LOCK_DURATION_MS"] / 1000
    declared = get_job_type(f"t-echo.{QUEUE}")
    job = enqueue(declared.name, {"value": "ran"})
    token, taken = take()
    claim = {**claim_header(token, "node@host:1", taken.claim), "takenAt": time.time() - lock_s}
    # Its lock went to another consumer meanwhile (it was found stalled and taken again).
    get_redis().set(keys.lock(QUEUE, job.id), "someone-else")
    assert execute(declared, job.id, "node@host:2", claim).outcome == "lost"
    assert get_job(QUEUE, job.id).state == "active"  # untouched: not run here
    get_redis().set(keys.lock(QUEUE, job.id), token)
    assert execute(declared, job.id, "node@host:2", claim).outcome == "completed"
    assert get_job(QUEUE, job.id).returnvalue == "ran"


def test_an_unreadable_message_is_dropped_with_a_log_line_and_the_queue_goes_on():

    job = enqueue(f"t-echo.{QUEUE}", {})
    client = get_redis()
    client.rpush(NORMAL, b"not json", b'{"headers": {"origin": "jobyard"}}')  # popped first
    received = []
    with app.connection_for_read() as conn:
        channel = _consumer(conn, received.append)
        for _ in range(2):
            channel._brpop_start()
            with pytest.raises(Empty):
                channel._brpop_read()
        assert received == [] and not client.hlen("unacked")
        channel._brpop_start()
        channel._brpop_read()
        assert [m.headers["id"] for m in received] == [job.id]
        received[0].ack()


def test_the_runner_claims_a_job_itself_when_its_message_carries_no_claim():
    """A message consumed by another transport (Sentinel, a global key prefix)."""
    from tasks.registry import get_job_type
    from tasks.worker.runner import execute

    declared = get_job_type(f"t-echo.{QUEUE}")
    job = enqueue(declared.name, {"value": "here"})
    assert execute(declared, job.id, "node@host:3").outcome == "completed"
    done = get_job(QUEUE, job.id)
    assert (done.returnvalue, done.attempts_made, done.worker) == ("here", 1, "node@host:3")
    assert execute(declared, job.id, "node@host:3").outcome == "skip"  # a second copy does not run
    Queue(QUEUE).pause()
    paused = enqueue(declared.name, {"value": "later"})
    assert execute(declared, paused.id, "node@host:3").outcome == "paused"


def test_an_idle_consumer_never_takes_a_message_outside_take_lua():
    """Killed just after its blocking read returned, an idle worker loses nothing.

    Before the bells, the idle BRPOP popped the job's message and claimed it in a second
    round trip: a worker killed in between left the job waiting with no message, forever.
    """
    with app.connection_for_read() as conn:
        channel = _consumer(conn)
        channel._taking = False  # idle: the next read blocks on the bells
        channel._brpop_start()
        job = enqueue(f"t-echo.{QUEUE}", {})
        with pytest.raises(Empty):
            channel._brpop_read()  # woken by the bell: nothing delivered, nothing popped
        channel.client.connection.disconnect()  # and now the worker dies (no close)
    assert get_redis().llen(NORMAL) == 1
    assert get_job(QUEUE, job.id).state == "waiting"
    assert taken_id(take()[1]) == job.id  # still there for the next consumer


def test_a_bell_wakes_an_idle_consumer_which_then_takes_the_job():
    received = []
    with app.connection_for_read() as conn:
        channel = _consumer(conn, received.append)
        channel._taking = False
        channel._brpop_start()
        sent = app.send_task(f"t-echo.{QUEUE}", kwargs={})  # the Celery way rings it too
        job = enqueue(f"t-echo.{QUEUE}", {})
        with pytest.raises(Empty):
            channel._brpop_read()
        assert channel._taking  # the next read asks take.lua
        for _ in range(2):
            channel._brpop_start()
            channel._brpop_read()
        assert {m.headers["id"] for m in received} == {sent.id, job.id}
        assert get_job(QUEUE, job.id).state == "active"
        for message in received:
            message.ack()
        channel.close()


def test_bells_are_bounded_however_many_messages_wait():
    enqueue_bulk([(f"t-echo.{QUEUE}", {}) for _ in range(keys.BELLS_KEPT * 3)])
    for _ in range(5):
        app.send_task(f"t-echo.{QUEUE}", kwargs={})
    assert get_redis().llen(keys.bell(QUEUE)) == keys.BELLS_KEPT


def test_a_reply_queue_gets_no_bell_that_would_outlive_it(worker):
    """`celery inspect` replies go to a client's queue read without acks (kombu's stock path,
    which pops no bell): its bell expires instead of staying, one key per client."""
    assert app.control.ping(timeout=1)
    bells = get_redis().keys(f"{keys.prefix()}*.reply.celery.pidbox:bell")
    assert bells and all(0 < get_redis().pttl(bell) <= 60_000 for bell in bells)
