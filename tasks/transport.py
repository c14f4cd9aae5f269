"""kombu's Redis transport, with Jobyard's consumer: pop and claim as one script.

Stock kombu spends three round trips per message in a worker: BRPOP, then a pipeline that
records the message as unacked, then another that acks it. For a Jobyard job the registry
already does that bookkeeping (an active job holds a lock; an expired lock is a stalled
job, run again), so this transport asks for messages with `take.lua`: one round trip pops
the next message and, for a job, claims it (state active, lock, events) before the message
leaves Redis. The claim rides to the runner in the message's `jobyard_claim` header, and the
job's complete/fail script is its ack. A message sent the Celery way (no job yet) gets
kombu's unacked entry inside the same script and is acked as kombu acks.

`take.lua` cannot block, so when it finds every list empty the channel falls back to one
stock BRPOP (no CPU spent while idle); a message that arrives during it is claimed with
`claim.lua` (the second round trip stock kombu would spend on its unacked entry), and the
next read uses `take.lua` again. See docs/architecture.md, "Consuming".

Also: stock kombu builds a new redis-py client object for every operation outside the
event loop (`conn_or_acquire`); with redis-py 8 that constructor is about a fifth of the
CPU on each side. The pool underneath is already shared, so one client per channel is
equivalent and safe.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic, time
from typing import Any

import structlog
from django.conf import settings
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.exceptions import NoScriptError, ResponseError

from tasks import scripts

#: The header carrying a claim from the consumer to the runner (see runner.JobTask).
CLAIM_HEADER = "jobyard_claim"
#: Dropped copies (duplicates, paused, over the limit) one take.lua call may skip.
MAX_POPS = 100
#: The `origin` header of messages written by enqueue.lua (see lua/prelude.lua).
ORIGIN = "jobyard"

log = structlog.get_logger("jobyard.transport")
jobs_log = structlog.get_logger("jobyard.jobs")  # the runner's logger: same events, one place


def consumer_name() -> str:
    """The name a claim records as the job's worker: node name and consumer pid."""
    from tasks.runner import worker_name
    from tasks.worker import node_name

    return worker_name(node_name())


def claim_header(token: str, worker: str, claim: list) -> dict[str, Any]:
    """What a claim hands the runner (the CLAIM_HEADER), from claim_job's reply after 'ok'."""
    _name, data, opts, attempts_made, _attempts, created = claim
    return {
        "token": token, "worker": worker, "data": bytes_to_str(data), "opts": bytes_to_str(opts),
        "attemptsMade": int(attempts_made), "createdAt": int(created), "takenAt": time(),
    }  # fmt: skip


def claim(queue: str, job_id: str, worker: str) -> dict[str, Any] | tuple[str, str | None]:
    """claim.lua for a job whose message this process already holds.

    Returns the claim (see claim_header), or why the job must not run: (outcome, detail).
    """
    conf = settings.JOBYARD
    rate_max, rate_ms = settings.JOBYARD_QUEUES.get(queue, {}).get("rate_limit") or (0, 0)
    token = uuid.uuid4().hex
    reply = scripts.run(
        "claim", queue, job_id, worker, token, conf["LOCK_DURATION_MS"], conf["EVENTS_MAXLEN"],
        rate_max, rate_ms,
    )  # fmt: skip
    if reply[0] != b"ok":
        detail = reply[1] if len(reply) > 1 and isinstance(reply[1], bytes) else None
        return bytes_to_str(reply[0]), detail and bytes_to_str(detail)
    return claim_header(token, worker, reply[1:])


class Completions:
    """Successful attempts a worker ran in its consumer's thread (`-P solo`), not yet written.

    The consumer's next take.lua completes them first (one round trip per job instead of
    two); whatever path does not take next (a blocking BRPOP, a cancelled consumer, close)
    completes them on its own. A worker killed meanwhile leaves the job active: its lock
    expires and it runs again, as when a worker dies just before complete.lua.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[tuple, dict[str, Any]]] = []
        self._consumer: tuple[int, int] | None = None
        self._mutex = threading.Lock()

    def consuming_here(self) -> None:
        """The calling thread delivers jobs that a take can complete."""
        self._consumer = (os.getpid(), threading.get_ident())

    def stop_consuming(self) -> None:
        """Its channel closes: what was deferred is completed now, and nothing more is."""
        self._consumer = None
        self.complete_now()

    def defer(self, args: tuple, fields: dict[str, Any]) -> bool:
        """Keep complete.lua's `args` for the next take, if this is the consumer's thread."""
        if self._consumer != (os.getpid(), threading.get_ident()):
            return False
        with self._mutex:
            self._pending.append((args, fields))
        return True

    def take_all(self) -> list[tuple[tuple, dict[str, Any]]]:
        with self._mutex:
            pending, self._pending = self._pending, []
        return pending

    def put_back(self, done: list[tuple[tuple, dict[str, Any]]]) -> None:
        with self._mutex:
            self._pending[:0] = done

    @staticmethod
    def logged(done: list[tuple[tuple, dict[str, Any]]], flags: str) -> None:
        for (_args, fields), flag in zip(done, flags, strict=True):
            if flag == "1":
                jobs_log.info("job_complete", **fields)
            else:
                jobs_log.warning("job_lock_lost", **fields)

    def complete_now(self) -> None:
        done = self.take_all()
        maxlen = settings.JOBYARD["EVENTS_MAXLEN"]
        for i, (args, fields) in enumerate(done):
            try:
                flag = scripts.run("complete", *args, maxlen)
            except Exception:  # Redis away: keep what is left for the next attempt
                self.put_back(done[i:])
                raise
            self.logged([(args, fields)], str(flag))


completions = Completions()


class QoS(kombu_redis.QoS):
    """kombu's ack emulation, minus the round trips take.lua already made.

    `_recorded`: tags whose unacked entry take.lua wrote (skip kombu's append).
    `_claimed`: claimed jobs by tag, with their list and message. They have no unacked
    entry: their ack is the job's complete/fail script, and a requeue is the registry's
    stall check (lock expiry).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recorded: set[str] = set()
        self._claimed: dict[str, tuple[str, dict[str, Any]]] = {}

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag in self._recorded:
            self._recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        if self._claimed.pop(delivery_tag, None):
            virtual.QoS.ack(self, delivery_tag)
            return
        super().ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if self._claimed.pop(delivery_tag, None):
            virtual.QoS.ack(self, delivery_tag)
            return
        super().reject(delivery_tag, requeue=requeue)

    def restore_unacked(self, client: Any = None) -> None:
        """At close: claimed jobs a worker received but never started go back unrun.

        A prefork worker stopping may hold a message it took but did not hand to a pool
        process; kombu would restore it from its unacked hash, which a claimed job is not
        in. A job already started (or cut off by a cold shutdown) is left to the stall check.
        """
        started = _started_tags()
        for tag in list(self._delivered):
            claimed = self._claimed.pop(tag, None)
            if claimed and tag not in started:
                release(*claimed)
        super().restore_unacked(client)


def _started_tags() -> set[str]:
    """Delivery tags of the requests this worker's pool has started (none outside a worker)."""
    from celery.worker import state

    return {request.message.delivery_tag for request in list(state.active_requests)}


def release(key: str, payload: dict[str, Any]) -> None:
    """Give back a job claimed but never run, and its message to the front of `key`."""
    claim = payload["headers"].pop(CLAIM_HEADER)
    scripts.run(
        "release", payload["properties"]["delivery_info"]["routing_key"],
        payload["headers"]["id"], claim["token"], settings.JOBYARD["EVENTS_MAXLEN"], key,
        dumps(payload),
    )  # fmt: skip


class Channel(kombu_redis.Channel):
    QoS = QoS
    _sync_client = None
    #: Ask with take.lua (True) or block in BRPOP (False, after take.lua found nothing).
    _taking = True
    _take_token: str | None = None
    _take_worker: str = ""
    _take_done: list = []  # noqa: RUF012  (replaced, never mutated)

    @contextmanager
    def conn_or_acquire(self, client=None) -> Iterator:
        if client:
            yield client
            return
        if self._sync_client is None:
            self._sync_client = self._create_client()
        yield self._sync_client

    # --- consuming ------------------------------------------------------------------------

    def _brpop_start(self, timeout: float | None = None) -> None:
        if not self._taking or self.global_keyprefix:
            completions.complete_now()
            self._take_token = None
            return super()._brpop_start(timeout)
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            completions.complete_now()
            return
        lists = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        self._take_done = completions.take_all()
        self._take_token, self._take_worker = uuid.uuid4().hex, consumer_name()
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self.client.connection.send_command(
            "EVALSHA", _take_sha(), 0, scripts.prefix(),
            *take_args(lists, queues, self._take_worker, self._take_token,
                       self.unacked_key, self.unacked_index_key,
                       [args for args, _ in self._take_done]),
        )  # fmt: skip

    def _brpop_read(self, **options: Any) -> bool:
        if self._take_token is None:
            return self._blocking_read(**options)
        key, payload = self._read_take(**options)
        self._deliver_popped(key, payload)
        return True

    def _read_take(self, **options: Any) -> tuple[str, dict[str, Any]]:
        """take.lua's reply: the list and message to deliver, its claim in the headers."""
        token, done = self._take_token, self._take_done
        self._take_done = []
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "EVALSHA", **options)
            except NoScriptError:  # Redis restarted or flushed its scripts: load, ask again
                _take_sha.loaded = False
                completions.put_back(done)
                raise kombu_redis.Empty() from None
            except self.connection_errors:
                # The script may have run: sent again, a done job would read as lock lost.
                completions.put_back(done)
                self.client.connection.disconnect()
                raise
            except ResponseError:  # refused (a full or read-only Redis): nothing was written
                completions.put_back(done)
                raise
        finally:
            self._in_poll = None
            self._take_token = None
            self._flush_brpop_reauth()
        flags, *reply = reply
        completions.logged(done, bytes_to_str(flags))
        if not reply:  # every list is empty: block in BRPOP until something arrives
            self._taking = False
            raise kombu_redis.Empty()
        if reply == [0]:  # only copies that must not run: ask again on the next tick
            raise kombu_redis.Empty()
        key, raw, *claim = reply
        key, payload = bytes_to_str(key), _readable(raw)
        if payload is None:
            log.error("message_unreadable", list=key, message=bytes_to_str(raw)[:200])
            raise kombu_redis.Empty()
        self.qos._recorded.add(payload["properties"]["delivery_tag"])
        if claim:
            self._attach_claim(key, payload, claim_header(token, self._take_worker, claim))
        return key, payload

    def _blocking_read(self, **options: Any) -> bool:
        """Stock BRPOP, read as kombu reads it; a job's message is then claimed."""
        key, raw = self._read_brpop(**options)
        payload = _readable(raw)
        if payload is None:
            log.error("message_unreadable", list=key, message=bytes_to_str(raw)[:200])
            raise kombu_redis.Empty()
        if self._is_job(payload):
            try:
                claimed = self._claim(key, payload)
            except Exception:  # Redis refused the script (full, read-only): keep the message
                with self.conn_or_acquire() as client:
                    client.rpush(key, raw)
                raise
            if not claimed:
                raise kombu_redis.Empty()
        self._deliver_popped(key, payload)
        return True

    def _read_brpop(self, **options: Any) -> tuple[str, bytes]:
        try:
            try:
                popped = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()
        if not popped:
            raise kombu_redis.Empty()
        self._taking = True
        key, raw = popped
        return bytes_to_str(key), raw

    def _is_job(self, payload: dict[str, Any]) -> bool:
        return (payload.get("headers") or {}).get("origin") == ORIGIN and not self.global_keyprefix

    def _claim(self, key: str, payload: dict[str, Any]) -> bool:
        """Claim a popped job's message; False when it must not run (it is dropped)."""
        queue = payload["properties"]["delivery_info"]["routing_key"]
        claimed = claim(queue, payload["headers"]["id"], consumer_name())
        if not isinstance(claimed, dict):
            return False
        self.qos._recorded.add(payload["properties"]["delivery_tag"])
        self._attach_claim(key, payload, claimed)
        return True

    def _attach_claim(self, key: str, payload: dict[str, Any], claimed: dict[str, Any]) -> None:
        """The claim rides to the runner in a header; its tag is then acked by the registry."""
        self.qos._claimed[payload["properties"]["delivery_tag"]] = (key, payload)
        payload["headers"][CLAIM_HEADER] = claimed

    def _deliver_popped(self, key: str, payload: dict[str, Any]) -> None:
        if not self.global_keyprefix:
            completions.consuming_here()
        queue = key.rsplit(self.sep, 1)[0] if key not in self.active_queues else key
        self._queue_cycle.rotate(queue)
        self.connection._deliver(payload, queue)

    def close(self) -> None:
        """Hand back a message in flight instead of delivering it to a stopping consumer.

        Stock kombu reads an outstanding BRPOP at close and delivers it, counting on its
        unacked entry to restore it. A job taken here has no such entry: its claim is
        released (no attempt, no stall counted) and its message put back at the front.
        """
        if self._in_poll and not self.closed:
            try:
                if self._take_token is not None:
                    key, payload = self._read_take()
                    self._hand_back(key, payload)
                else:  # popped by BRPOP, nothing recorded yet: back to the front
                    key, raw = self._read_brpop()
                    with self.conn_or_acquire() as client:
                        client.rpush(key, raw)
            except kombu_redis.Empty:
                pass
            except Exception:  # Redis away: a claim left behind is found stalled later
                log.warning("hand_back_failed", exc_info=True)
        try:
            completions.stop_consuming()
        except Exception:  # Redis away: those jobs are found stalled and run again
            log.warning("complete_failed", exc_info=True)
        super().close()

    def basic_cancel(self, consumer_tag: str) -> Any:
        """A cancelled consumer takes no more: complete what it ran now."""
        completions.complete_now()
        return super().basic_cancel(consumer_tag)

    def _hand_back(self, key: str, payload: dict[str, Any]) -> None:
        tag = payload["properties"]["delivery_tag"]
        if self.qos._claimed.pop(tag, None):
            release(key, payload)
        elif tag in self.qos._recorded:  # take.lua wrote its unacked entry: restore it
            self.qos.restore_by_tag(tag)
        self.qos._recorded.discard(tag)


def take_args(
    lists: list[str], queues: list[str], worker: str, token: str,
    unacked: str = "unacked", unacked_index: str = "unacked_index", done: list[tuple] = (),
) -> list[Any]:  # fmt: skip
    """take.lua's ARGV after the key prefix: complete `done` (complete.lua's arguments but
    the maxlen), then pop from `lists` (in order) for `queues`."""
    conf = settings.JOBYARD
    limits: list[Any] = []
    for queue in queues:
        limit = settings.JOBYARD_QUEUES.get(queue, {}).get("rate_limit")
        if limit:
            limits += [queue, *limit]
    return [
        worker, token, conf["LOCK_DURATION_MS"], conf["EVENTS_MAXLEN"], unacked, unacked_index,
        MAX_POPS, len(done), *(part for args in done for part in args), len(lists), *lists,
        *limits,
    ]  # fmt: skip


def _readable(raw: bytes) -> dict[str, Any] | None:
    """A popped message as kombu reads it, or None when kombu could not deliver it."""
    try:
        payload = loads(bytes_to_str(raw))
        payload["properties"]["delivery_tag"]  # noqa: B018  (kombu needs it to ack)
    except (ValueError, TypeError, KeyError):
        return None
    return payload


def _take_sha() -> str:
    """take.lua's SHA1, loaded into Redis once per process (again after a NOSCRIPT)."""
    script = scripts.script("take")
    if not _take_sha.loaded:
        script.registered_client.script_load(script.script)
        _take_sha.loaded = True
    return script.sha


_take_sha.loaded = False


class Transport(kombu_redis.Transport):
    Channel = Channel
