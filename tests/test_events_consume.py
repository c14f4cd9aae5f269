"""events.consume: a durable reader of the event streams through a Redis consumer group."""

import threading

import pytest

import tasks
from tasks.connection import get_redis
from tasks.events import Event, consume, consume_once, group_lag
from tasks.keys import events as events_key

GROUP = "t-consumer"


def add(queue: str, event: str, job_id: str, **fields: str) -> str:
    return get_redis().xadd(events_key(queue), {"event": event, "jobId": job_id, **fields}).decode()


def pending(queue: str, group: str = GROUP) -> int:
    return get_redis().xpending(events_key(queue), group)["pending"]


class Collect:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[Event]] = []
        self.fail = fail

    def __call__(self, events: list[Event]) -> None:
        self.batches.append(events)
        if self.fail:
            raise RuntimeError("handler failed")

    @property
    def ids(self) -> list[str]:
        return [e.id for batch in self.batches for e in batch]


def test_a_failed_batch_stays_pending_and_is_handed_again_first():
    assert consume_once(GROUP, Collect(), queues=["default"]) == 0  # makes the group at "$"
    first = [add("default", "waiting", "j1"), add("default", "active", "j1", worker="w:1")]

    failing = Collect(fail=True)
    with pytest.raises(RuntimeError):
        consume_once(GROUP, failing, queues=["default"])
    assert failing.ids == first and pending("default") == 2  # raised: nothing acknowledged

    later = add("default", "completed", "j1", returnvalue="1")
    again = Collect()
    # The unacknowledged entries come back before the newer one, decoded as Events.
    assert consume_once(GROUP, again, queues=["default"]) == 2
    assert again.ids == first
    assert again.batches[0][1] == Event("default", first[1], "active", "j1", {"worker": "w:1"})
    assert pending("default") == 0

    assert consume_once(GROUP, again, queues=["default"]) == 1
    assert again.ids == [*first, later]
    # Acknowledged entries are never handed again.
    assert consume_once(GROUP, again, queues=["default"]) == 0
    assert again.ids == [*first, later] and pending("default") == 0
    assert group_lag(GROUP, ["default"]) == {"default": 0}


def test_a_new_group_starts_now_unless_told_to_start_from_the_first_entry():
    old = add("email", "waiting", "old")
    fresh = Collect()
    assert consume_once("t-from-now", fresh, queues=["email"]) == 0
    replay = Collect()
    assert consume_once("t-from-start", replay, queues=["email"], from_id="0") == 1
    assert replay.ids == [old]

    new = add("email", "waiting", "new")
    assert consume_once("t-from-now", fresh, queues=["email"]) == 1
    assert fresh.ids == [new]  # each group reads every entry once, apart from the others
    assert consume_once("t-from-start", replay, queues=["email"]) == 1
    assert replay.ids == [old, new]


def test_a_dead_consumers_entries_are_claimed_once_idle_long_enough():
    consume_once(GROUP, Collect(), queues=["default"], consumer="dead")
    lost = add("default", "waiting", "j2")
    with pytest.raises(RuntimeError):
        consume_once(GROUP, Collect(fail=True), queues=["default"], consumer="dead")

    # Held by another consumer and not idle long enough: left to it; new entries go ahead.
    newer = add("default", "waiting", "j3")
    other = Collect()
    assert consume_once(GROUP, other, queues=["default"], consumer="alive") == 1
    assert other.ids == [newer]

    # Past claim_idle_ms it is presumed abandoned, claimed and handed to this consumer.
    assert consume_once(GROUP, other, queues=["default"], consumer="alive", claim_idle_ms=0) == 1
    assert other.ids == [newer, lost]
    assert pending("default") == 0


def test_pending_entries_trimmed_from_the_stream_are_dropped_not_handed_over():
    consume_once(GROUP, Collect(), queues=["default"])
    gone, kept = add("default", "waiting", "j4"), add("default", "waiting", "j5")
    with pytest.raises(RuntimeError):
        consume_once(GROUP, Collect(fail=True), queues=["default"])
    get_redis().xdel(events_key("default"), gone)
    handler = Collect()
    assert consume_once(GROUP, handler, queues=["default"]) == 1
    assert handler.ids == [kept] and pending("default") == 0


def test_batches_are_capped_per_queue_and_span_queues():
    consume_once(GROUP, Collect(), queues=["default", "email"])
    ids = [add("default", "progress", "j6", progress=str(n)) for n in range(5)]
    email = add("email", "waiting", "j7")
    handler = Collect()
    assert consume_once(GROUP, handler, queues=["default", "email"], batch_size=3) == 4
    assert sorted(handler.ids) == sorted([*ids[:3], email])
    assert consume_once(GROUP, handler, queues=["default", "email"], batch_size=3) == 2
    assert handler.ids[-2:] == ids[3:]


def test_consume_loops_until_stopped_and_is_public():
    assert tasks.consume is consume and "consume" in tasks.__all__
    consume_once(GROUP, Collect(), queues=["default"])
    added = [add("default", "waiting", f"j{n}") for n in range(3)]
    stop = threading.Event()
    seen: list[str] = []

    def handler(events: list[Event]) -> None:
        seen.extend(e.id for e in events)
        if len(seen) >= 3:
            stop.set()

    assert consume(GROUP, handler, queues=["default"], batch_size=2, block_ms=50,
                   stop=stop.is_set) == 3  # fmt: skip
    assert seen == added and pending("default") == 0
