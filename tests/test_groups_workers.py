"""Groups with real workers (issue #14's acceptance): a tenant's 10,000 jobs do not starve
another's 10, the per-group concurrency limit holds across two workers, a paused group
stays paused across worker restarts, and a SIGKILLed worker's job does not hold its
group's slot for ever."""

from __future__ import annotations

import pytest

from tasks import Queue, enqueue, enqueue_bulk, get_job
from tasks.connection import get_redis
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

QUEUE = "cleanup"  # no session worker consumes it
TYPE = "t-grouped.cleanup"


def started(key: str) -> list[tuple[str, str]]:
    return [tuple(e.decode().split("/", 1)) for e in get_redis().lrange(f"{key}:order", 0, -1)]


def most_at_once(key: str, group: str) -> int:
    return int(get_redis().get(f"{key}:{group}:max") or 0)


def test_a_small_tenant_is_not_starved_and_the_limit_holds_across_two_workers(start_worker):
    key = "fair"
    queue = Queue(QUEUE)
    queue.set_group_limits(concurrency=2)
    item = {"key": key, "seconds": 0.02}
    enqueue_bulk([(TYPE, item, {"group": "A"})] * 10_000)
    b_jobs = [enqueue(TYPE, item, group="B").id for _ in range(10)]
    workers = [start_worker([QUEUE], concurrency=3, wait=False) for _ in range(2)]
    sampled: list[dict[str, int]] = []

    def sample() -> bool:
        groups = {g["group"]: g["active"] for g in queue.groups()["groups"]}
        sampled.append(groups)
        return sum(1 for g, _ in started(key) if g == "A") >= 500

    wait_for(sample, timeout=180, interval=0.01, message="500 of A's jobs to start")
    for proc in workers:
        assert proc.process.poll() is None  # both were serving throughout
    order = started(key)
    b_positions = [i for i, (g, _) in enumerate(order) if g == "B"]
    a_positions = [i for i, (g, _) in enumerate(order) if g == "A"]
    assert {job_id for g, job_id in order if g == "B"} == set(b_jobs)
    assert max(b_positions) < a_positions[99]  # every B job started before A's 100th
    # The limit, sampled from outside while they ran, and as the jobs themselves saw it.
    running = [s for s in sampled if s.get("A")]
    assert max(s["A"] for s in running) == 2 and len(running) > 20
    assert all(active <= 2 for s in sampled for active in s.values())
    assert most_at_once(key, "A") == 2 and most_at_once(key, "B") <= 2
    queue.pause()


def test_a_paused_group_stays_paused_across_worker_restarts(start_worker):
    key = "paused"
    queue = Queue(QUEUE)
    queue.pause_group("P")
    held = [enqueue(TYPE, {"key": key}, group="P").id for _ in range(3)]
    others = [enqueue(TYPE, {"key": key}, group="Q").id for _ in range(3)]
    first = start_worker([QUEUE], concurrency=2)
    wait_for(lambda: all(get_job(QUEUE, i).state == "completed" for i in others), timeout=60)
    first.stop()
    second = start_worker([QUEUE], concurrency=2)
    late = enqueue(TYPE, {"key": key}, group="Q")
    wait_for(lambda: get_job(QUEUE, late.id).state == "completed", timeout=60)
    assert [get_job(QUEUE, i).state for i in held] == ["waiting"] * 3
    assert not [g for g, _ in started(key) if g == "P"]
    assert queue.groups(["P"])["groups"][0] | {"concurrency": None} == {
        "group": "P", "waiting": 3, "active": 0, "paused": True, "concurrency": None,
        "rate_limit": None}  # fmt: skip
    queue.resume_group("P")
    wait_for(lambda: all(get_job(QUEUE, i).state == "completed" for i in held), timeout=60)
    second.stop()


def test_a_sigkilled_workers_job_does_not_hold_its_groups_slot(start_worker):
    key = "killed"
    queue = Queue(QUEUE)
    queue.set_group_limits("K", concurrency=1)
    long = enqueue(TYPE, {"key": key, "seconds": 3}, group="K")
    short = enqueue(TYPE, {"key": key}, group="K")
    first = start_worker([QUEUE], concurrency=2)
    wait_for(lambda: started(key), timeout=60)
    assert queue.groups(["K"])["groups"][0]["active"] == 1
    first.kill()  # the group is at its limit, held by a job whose worker is gone
    start_worker([QUEUE], concurrency=2)
    wait_for(lambda: get_job(QUEUE, short.id).state == "completed", timeout=60)
    wait_for(lambda: get_job(QUEUE, long.id).state == "completed", timeout=60)
    assert get_job(QUEUE, long.id).stalled_count == 1
    row = queue.groups(["K"])["groups"][0]
    assert (row["waiting"], row["active"]) == (0, 0)
