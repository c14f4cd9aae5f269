"""Groups: round robin between a queue's groups, per-group concurrency and rate limits,
pause and resume, counts, and the counters kept right by every way a job leaves `active`.

These drive take.lua directly (the script a worker's consumer calls), on a queue no
session worker consumes; tests/test_groups_workers.py proves the same with real workers.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tasks import InvalidJobOptions, Queue, enqueue, enqueue_bulk, get_job, keys, messages, scripts
from tasks.connection import get_redis

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "catalog"
LISTS = keys.broker_lists(QUEUE)


def take() -> tuple[str, str] | None:
    """One take.lua call as a worker makes it: (job id, token) of the job it claimed."""
    token = uuid.uuid4().hex
    for _ in range(5):  # a take may only drop copies that must not run: ask again
        taken = scripts.take(LISTS, [QUEUE], "pytest@host:1", token)
        if taken.empty:
            return None
        if taken.message is not None:
            assert taken.claim is not None and taken.broker_list in LISTS
            return job_id_of(taken.message), token
    raise AssertionError("take kept dropping copies")


def job_id_of(message: bytes) -> str:
    """A job's lean token `queue/id` (docs/architecture.md, "Lean messages") or, with lean
    messages off, its full Celery message."""
    address = messages.parse_token(message)
    return address[1] if address else json.loads(message)["headers"]["id"]


def take_all() -> list[str]:
    ids = []
    while (taken := take()) is not None:
        ids.append(taken[0])
    return ids


def complete(job_id: str, token: str) -> None:
    assert scripts.complete(scripts.Completion(QUEUE, job_id, token, "null", -1, 0))


def send(group: str | None, n: int = 1, **options) -> list[str]:
    extra = {"group": group} if group else {}
    return [enqueue("t-echo.catalog", {"value": i}, **extra, **options).id for i in range(n)]


def group_of(job_id: str) -> str | None:
    return get_job(QUEUE, job_id).opts.get("group")


def counts(group: str) -> tuple[int, int]:
    (row,) = Queue(QUEUE).groups([group])["groups"]
    return row["waiting"], row["active"]


def test_groups_are_served_round_robin():
    a, b, c = send("A", 5), send("B", 2), send("C", 1)
    taken = take_all()
    assert [group_of(i) for i in taken] == ["A", "B", "C", "A", "B", "A", "A", "A"]
    assert [i for i in taken if group_of(i) == "A"] == a  # in order within a group
    assert set(taken) == set(a + b + c)


def test_grouped_and_ungrouped_jobs_of_a_queue_are_both_served():
    grouped, plain = send("A", 20), send(None, 20)
    taken = take_all()
    assert set(taken) == set(grouped + plain)
    first_half = taken[:20]
    # The coin of each take's token serves both kinds; neither waits for the other to drain.
    assert 3 <= sum(group_of(i) == "A" for i in first_half) <= 17


def test_a_group_at_its_concurrency_limit_waits_and_the_others_go_on():
    Queue(QUEUE).set_group_limits(concurrency=2)
    a, b = send("A", 4), send("B", 4)
    held = [take(), take(), take(), take()]
    assert sorted(group_of(i) for i, _ in held) == ["A", "A", "B", "B"]
    assert take() is None  # both groups at their limit
    assert counts("A") == (2, 2)
    complete(*held[0])  # an A job ends: A may start one more, and only one
    job_id, token = take()
    assert group_of(job_id) == "A" and take() is None
    assert counts("A") == (1, 2)
    assert set(a + b) >= {i for i, _ in held} | {job_id}


def test_a_groups_own_limit_overrides_the_queues():
    queue = Queue(QUEUE)
    queue.set_group_limits(concurrency=1)
    queue.set_group_limits("B", concurrency=3)
    send("A", 5), send("B", 5)
    groups = sorted(group_of(i) for i in take_all())
    assert groups == ["A", "B", "B", "B"]
    info = queue.groups()
    assert info["defaults"] == {"concurrency": 1, "rate_limit": None}
    assert {g["group"]: g["concurrency"] for g in info["groups"]} == {"A": None, "B": 3}


def test_a_group_over_its_rate_waits_while_the_others_go_on():
    queue = Queue(QUEUE)
    queue.set_group_limits("A", rate_limit=(2, 60_000))
    send("A", 5), send("B", 3)
    groups = [group_of(i) for i in take_all()]
    assert sorted(groups) == ["A", "A", "B", "B", "B"]
    assert counts("A") == (3, 2)
    assert get_redis().zscore(keys.group_key(QUEUE, "glimited"), "A") is not None
    # The window passes (its log emptied): the group is served again.
    get_redis().delete(keys.group_key(QUEUE, "glimiter", "A"))
    get_redis().zadd(keys.group_key(QUEUE, "glimited"), {"A": 0})
    assert [group_of(i) for i in take_all()] == ["A", "A"]


def test_a_paused_group_starts_nothing_until_resumed():
    queue = Queue(QUEUE)
    queue.pause_group("A")
    a, b = send("A", 3), send("B", 2)
    assert sorted(take_all()) == sorted(b)
    assert queue.groups(["A"])["groups"][0]["paused"] is True
    assert [get_job(QUEUE, i).state for i in a] == ["waiting"] * 3
    queue.resume_group("A")
    assert take_all() == a


def test_counts_follow_jobs_through_their_states():
    queue = Queue(QUEUE)
    a = send("A", 3)
    assert counts("A") == (3, 0)
    job_id, token = take()
    assert counts("A") == (2, 1)
    complete(job_id, token)
    assert counts("A") == (2, 0)
    assert queue.remove(a[1])
    assert counts("A") == (1, 0)
    assert take_all() == [a[2]]  # the removed job's message is dropped
    assert [g["group"] for g in queue.groups()["groups"]] == ["A"]
    complete(a[2], get_redis().hget(keys.job(QUEUE, a[2]), "token").decode())
    assert queue.groups()["groups"] == []  # an idle group without settings is forgotten


def test_a_stalled_job_frees_its_groups_slot():
    Queue(QUEUE).set_group_limits(concurrency=1)
    first, second = send("A", 2)
    assert take()[0] == first and take() is None
    get_redis().delete(keys.lock(QUEUE, first))  # its worker died: the lock expires
    assert scripts.stalled(QUEUE, 1, -1) == [first]
    assert counts("A") == (2, 0)
    job_id, token = take()  # the group runs again: first the job that waited,
    assert job_id == second and counts("A") == (1, 1)
    assert take() is None  # its limit still holding,
    complete(job_id, token)
    assert take()[0] == first  # then the one sent again


def test_a_failed_attempt_frees_the_slot_and_its_retry_comes_back_to_the_group():
    Queue(QUEUE).set_group_limits(concurrency=1)
    first, second = send("A", 2)
    _, token = take()
    assert scripts.fail(QUEUE, first, token, "boom", "", 0, -1, 0) == "retrying"
    assert counts("A") == (2, 0)
    assert take_all() == [second]  # the retry went behind it, in the group's list
    assert get_redis().llen(keys.group_key(QUEUE, "gjobs", "A")) == 1


def test_a_released_job_goes_back_to_the_front_of_its_group():
    first, second = send("A", 2)
    job_id, token = take()
    assert job_id == first
    assert scripts.release(QUEUE, first, token, QUEUE, json.dumps({"headers": {"id": first}}))
    assert counts("A") == (2, 0)
    assert get_redis().llen(QUEUE) == 0  # not to the queue's list: to the group's
    assert get_redis().llen(keys.group_key(QUEUE, "gjobs", "A")) == 2


def test_a_delayed_grouped_job_joins_its_group_when_due():
    (job_id,) = send("A", 1, delay=60_000)
    assert take() is None
    get_redis().zadd(keys.state(QUEUE, "delayed"), {job_id: 0}, xx=True)
    scripts.promote([QUEUE])
    assert take_all() == [job_id]


def test_bulk_enqueue_takes_groups_too():
    jobs = enqueue_bulk([("t-echo.catalog", {}, {"group": f"g{i % 3}"}) for i in range(9)])
    assert {g["group"]: g["waiting"] for g in Queue(QUEUE).groups()["groups"]} == {
        "g0": 3, "g1": 3, "g2": 3}  # fmt: skip
    assert [group_of(i) for i in take_all()[:3]] == ["g0", "g1", "g2"]
    assert len(jobs) == 9


@pytest.mark.parametrize("group", ["", "a b", "x" * 200, 5, "ü"])
def test_bad_group_names_are_refused(group):
    with pytest.raises(InvalidJobOptions):
        enqueue("t-echo.catalog", {}, group=group)
    with pytest.raises(InvalidJobOptions):
        Queue(QUEUE).pause_group(group)


def test_ungrouped_jobs_touch_no_group_key():
    send(None, 3)
    take_all()
    names = [k.decode() for k in get_redis().keys(f"{keys.prefix()}{QUEUE}:g*")]
    assert names == []
