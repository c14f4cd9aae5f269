"""kombu's Redis transport, with Jobyard's consumer: pop and claim as one script.

Stock kombu spends three round trips per message in a worker: BRPOP, then a pipeline that
records the message as unacked, then another that acks it. For a Jobyard job the registry
already does that bookkeeping (an active job holds a lock; an expired lock is a stalled
job, run again), so this transport asks for messages with `take.lua`: one round trip pops
the next message and, for a job, claims it (state active, lock, events) before the message
leaves Redis. The claim rides to the runner in the message's `jobyard_claim` header, and the
job's complete/fail script is its ack. A message sent the Celery way (no job yet) gets
kombu's unacked entry inside the same script and is acked as kombu acks.

`take.lua` cannot block, so when it finds every list empty the channel blocks instead in a
BRPOP on the queues' *bells*, never on their lists: every message sent (by enqueue.lua,
by a script that sends a job again, or the Celery way through this transport) also pushes
a token on its queue's bell. A token, or the BRPOP's one-second timeout, sends the channel
back to `take.lua`. So no message ever leaves Redis outside a script that claims its job
in the same step: a worker killed at any instant leaves its job either waiting with its
message in the list, or active under a lock that expires. A token lost with a killed
worker costs at most the timeout, since the message is still in the list. See
docs/architecture.md, "Consuming".

Also: stock kombu builds a new redis-py client object for every operation outside the
event loop (`conn_or_acquire`); with redis-py 8 that constructor is about a fifth of the
CPU on each side. The pool underneath is already shared, so one client per channel is
equivalent and safe.

`Transport` serves redis:// and rediss:// URLs, `SentinelTransport` sentinel:// ones (kombu's
master discovery around the same consumer); project/broker.py maps the schemes to them. A
broker `global_keyprefix` is refused when a channel opens (GLOBAL_KEYPREFIX_REFUSED).

kombu's private members this module relies on, checked against kombu 5.x (pyproject pins
the range; tests/test_transport.py exercises each): Channel._brpop_start / _brpop_read /
_in_poll / _brpop_sent_at / _flush_brpop_reauth / _queue_cycle / _q_for_pri /
_create_client / _sync_client (ours) / conn_or_acquire, Connection._deliver,
QoS._delivered, virtual.QoS.append / ack (to skip the Redis QoS's own bookkeeping).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.exceptions import NoScriptError, ResponseError

from tasks import keys, messages, scripts
from tasks.enqueue import prepare_message
from tasks.worker.claims import CLAIM_HEADER, claim_header, completions, worker_name  # fmt: skip

log = structlog.get_logger("jobyard.transport")

#: Why a broker `global_keyprefix` is refused rather than half honoured: see the message.
GLOBAL_KEYPREFIX_REFUSED = (
    "the broker transport option global_keyprefix is not supported: Jobyard's enqueue script"
    " writes each job's message to its queue's kombu list by the queue's plain name"
    " (tasks/keys.py broker_list), and take.lua pops it there, so prefixed lists would never"
    " see those jobs. JOBYARD_KEY_PREFIX prefixes the registry's keys; to share one Redis"
    " between deployments give each its own database (REDIS_DB or REDIS_URL's /N)."
)


#: How long the bell of a queue outside JOBYARD_QUEUES outlives its last message.
BELL_TTL_MS = 60_000


class QoS(kombu_redis.QoS):
    """kombu's ack emulation, minus the round trips take.lua already made.

    `_recorded`: tags whose unacked entry take.lua wrote (skip kombu's append).
    `_claimed`: claimed jobs by tag, with their list, message and the entry popped from the
    list (a lean token or a full message). They have no unacked entry: their ack is the
    job's complete/fail script, and a requeue is the registry's stall check (lock expiry).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recorded: set[str] = set()
        self._claimed: dict[str, tuple[str, dict[str, Any], bytes]] = {}

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


def release(key: str, payload: dict[str, Any], entry: bytes) -> None:
    """Give back a job claimed but never run, and its list entry to the front of `key`."""
    claimed = payload["headers"].pop(CLAIM_HEADER)
    queue = payload["properties"]["delivery_info"]["routing_key"]
    scripts.release(queue, payload["headers"]["id"], claimed["token"], key, entry)


class Channel(kombu_redis.Channel):
    QoS = QoS
    _sync_client = None
    #: Ask with take.lua (True), or block on the bells (False: take.lua found nothing).
    _taking = True
    _take_token: str | None = None
    _take_worker: str = ""
    _take_done: list = []  # noqa: RUF012  (replaced, never mutated)

    def __init__(self, connection: Any, *args: Any, **kwargs: Any) -> None:
        if connection.client.transport_options.get("global_keyprefix"):
            raise ImproperlyConfigured(GLOBAL_KEYPREFIX_REFUSED)
        super().__init__(connection, *args, **kwargs)

    @contextmanager
    def conn_or_acquire(self, client=None) -> Iterator:
        if client:
            yield client
            return
        if self._sync_client is None:
            self._sync_client = self._create_client()
        yield self._sync_client

    # --- consuming ------------------------------------------------------------------------

    #: Queues consumed without acks (a client's reply queue): take.lua would write kombu's
    #: unacked entry for their messages, and nothing would ever remove it.
    _no_ack_queues: frozenset[str] = frozenset()

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._no_ack_queues = self._no_ack_queues | {queue}
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    @property
    def _stock(self) -> bool:
        """Consume as stock kombu does: for a consumer that does not ack (a client's reply
        queue; a worker's task consumer always acks)."""
        return bool(self._no_ack_queues)

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self._stock:  # stock kombu consuming; the runner claims each job
            completions.complete_now()
            self._take_token = None
            return super()._brpop_start(timeout)
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            completions.complete_now()
            return
        if not self._taking:
            completions.complete_now()
            self._take_token = None
            self._in_poll = self.client.connection
            self._brpop_sent_at = monotonic()
            bells = [keys.bell(queue) for queue in queues]
            self.client.connection.send_command("BRPOP", *bells, timeout or self.brpop_timeout)
            return
        lists = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        self._take_done = completions.take_all()
        self._take_token, self._take_worker = uuid.uuid4().hex, worker_name()
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self.client.connection.send_command(
            *scripts.take_command(
                lists,
                queues,
                self._take_worker,
                self._take_token,
                self.unacked_key,
                self.unacked_index_key,
                [done for done, _ in self._take_done],
            )
        )

    def _brpop_read(self, **options: Any) -> bool:
        if self._stock:
            return self._stock_read(**options)
        if self._take_token is None:
            self._read_bell(**options)
            raise kombu_redis.Empty()  # woken (or timed out): ask take.lua next
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
                scripts.take_sha.loaded = False
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
        taken = scripts.parse_take(reply)
        completions.logged(done, taken.done)
        if taken.empty:  # every list is empty: block in BRPOP until something arrives
            self._taking = False
            raise kombu_redis.Empty()
        if taken.message is None:  # only copies that must not run: ask again on the next tick
            raise kombu_redis.Empty()
        key = taken.broker_list
        if taken.timelimit is not None:  # a job's lean token: its message built from its hash
            queue, job_id = taken.message.decode().split(messages.TOKEN_SEP, 1)
            payload = messages.for_job(queue, job_id, taken.claim.name, self._step(key, queue),
                                       taken.timelimit, taken.kept, f"{job_id}#{token}")  # fmt: skip
        else:
            payload = _readable(taken.message)
        if payload is None:
            log.error("message_unreadable", list=key, message=bytes_to_str(taken.message)[:200])
            raise kombu_redis.Empty()
        self.qos._recorded.add(payload["properties"]["delivery_tag"])
        if taken.claim:
            header = claim_header(token, self._take_worker, taken.claim)
            self._attach_claim(key, payload, header, taken.message)
        return key, payload

    def _step(self, key: str, queue: str) -> int:
        """The priority step of `queue`'s list `key` (kombu's _q_for_pri in reverse)."""
        return 0 if key == queue else int(key[len(queue) + len(self.sep) :])

    def _read_bell(self, **options: Any) -> str | None:
        """The bell whose token the idle BRPOP popped, or None when it timed out."""
        popped = self._read_brpop(**options)
        self._taking = True
        return popped and popped[0]

    def _stock_read(self, **options: Any) -> bool:
        """A message popped by stock kombu's BRPOP (a consumer without acks)."""
        popped = self._read_brpop(**options)
        if not popped:
            raise kombu_redis.Empty()
        key, raw = popped
        if messages.parse_token(raw):  # a job's lean token: the runner claims the job
            with self.conn_or_acquire() as client:
                payload = messages.read(raw, client)
            if payload is None:  # the job is gone (removed): nothing to deliver
                raise kombu_redis.Empty()
        else:
            payload = _readable(raw)
        if payload is None:
            log.error("message_unreadable", list=key, message=bytes_to_str(raw)[:200])
            raise kombu_redis.Empty()
        self._deliver_popped(key, payload)
        return True

    def _read_brpop(self, **options: Any) -> tuple[str, bytes] | None:
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
            return None
        key, raw = popped
        return bytes_to_str(key), raw

    def _attach_claim(
        self, key: str, payload: dict[str, Any], claimed: dict[str, Any], entry: bytes
    ) -> None:
        """The claim rides to the runner in a header; its tag is then acked by the registry."""
        self.qos._claimed[payload["properties"]["delivery_tag"]] = (key, payload, entry)
        payload["headers"][CLAIM_HEADER] = claimed

    def _deliver_popped(self, key: str, payload: dict[str, Any]) -> None:
        if not self._stock:
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
                elif popped := self._read_brpop():
                    # A stock BRPOP's message (nothing recorded yet) back to the front; or
                    # a bell's token back, to wake another idle consumer.
                    with self.conn_or_acquire() as client:
                        client.rpush(*popped)
            except kombu_redis.Empty:
                pass
            except Exception:  # Redis away: a claim left behind is found stalled later
                log.warning("hand_back_failed", exc_info=True)
        try:
            completions.stop_consuming()
        except Exception:  # Redis away: those jobs are found stalled and run again
            log.warning("complete_failed", exc_info=True)
        super().close()

    #: Each message is sent by its own script (send.lua): kombu's publish batches, which
    #: buffer plain LPUSHes in a pipeline, would bypass it.
    supports_batch_publish = False

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        """A task sent the Celery way becomes a registry job as it is sent (send.lua): the
        job and its message are written in one step, a delay waits in the registry, not
        in a worker. Other messages (a queue outside JOBYARD_QUEUES, a reply) are sent as
        kombu sends them, and ring their queue's bell (see the module doc)."""
        pri = self._get_message_priority(message, reverse=False)
        if queue in settings.JOBYARD_QUEUES:
            prepared = prepare_message(queue, message, self.priority(pri))
            if prepared is not None:
                with self.conn_or_acquire() as client:
                    scripts.send(queue, prepared.job, prepared.message, client=client)
                return
        with self.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            pipe.lpush(self._q_for_pri(queue, pri), dumps(message))
            if self._expires and queue in self._expires:
                for step in self.priority_steps:
                    pipe.pexpire(self._q_for_pri(queue, step), self._expires[queue])
            pipe.lpush(keys.bell(queue), 1)
            pipe.ltrim(keys.bell(queue), 0, keys.BELLS_KEPT - 1)
            if queue not in settings.JOBYARD_QUEUES:
                # A queue of no worker's (a `celery inspect` client's reply queue, read
                # without acks on kombu's stock path, which never pops a bell): its bell
                # goes with it instead of staying behind, one key per client.
                pipe.pexpire(keys.bell(queue), BELL_TTL_MS)
            pipe.execute()

    def basic_cancel(self, consumer_tag: str) -> Any:
        """A cancelled consumer takes no more: complete what it ran now."""
        completions.complete_now()
        return super().basic_cancel(consumer_tag)

    def _hand_back(self, key: str, payload: dict[str, Any]) -> None:
        tag = payload["properties"]["delivery_tag"]
        if claimed := self.qos._claimed.pop(tag, None):
            release(*claimed)
        elif tag in self.qos._recorded:  # take.lua wrote its unacked entry: restore it
            self.qos.restore_by_tag(tag)
        self.qos._recorded.discard(tag)


def _readable(raw: bytes) -> dict[str, Any] | None:
    """A popped message as kombu reads it, or None when kombu could not deliver it."""
    try:
        payload = loads(bytes_to_str(raw))
        payload["properties"]["delivery_tag"]  # noqa: B018  (kombu needs it to ack)
    except (ValueError, TypeError, KeyError):
        return None
    return payload


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """Jobyard's consumer on the master that kombu's Sentinel channel finds: the same
    take.lua, on a connection pool that asks the sentinels where the master is."""


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
