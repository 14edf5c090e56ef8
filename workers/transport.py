"""kombu's Redis transport, with one race closed and one waste removed.

Waste: kombu 5.7 builds a new ``redis.Redis`` client (~80 µs) every time a channel needs a
synchronous one without being handed one: twice per message in the ack path of a late-acked
task (the unacked bookkeeping), and on every restore sweep. Here a channel keeps one client
per connection pool and hands it out again (redis-py clients are thread-safe: each command
takes a connection from the pool); a new pool (after a reconnect) gets a new client.

Two round trips removed. Taking: kombu records each message a worker takes in its unacked
bookkeeping (a MULTI/ZADD/HSET/EXEC round trip, QoS.append) just before handing it to the
pool; a delivery's attempt then starts with a round trip of its own, the state machine's
``claim``. For a delivery that runs now (no ETA: a countdown retry is held until it is due)
in a worker whose pool runs tasks in this process (threads, solo), this channel claims the
delivery in the same call that records the message (``DeliveryStore.claim(taken=...)``) and
hands the claim to the task (``claimed``). A claim the task does not pick up within
``CLAIM_FRESH_S`` (a pool slower to start it than ever seen) is dropped and the task claims
again, which for the same delivery is harmless (it holds the slot already).

Acking: kombu acks a late-acked message with its own MULTI/ZREM/HDEL/EXEC round
trip after the task returns. Our attempt ends with one Redis call anyway (the state machine's
``settle``), so the task hands the message's delivery tag to it (``broker_message``), the
script takes the message out of the unacked bookkeeping with everything else, and this
channel's QoS then acks the tag without going to Redis (``settled``). Anything that did not
reach ``settle`` (a wait, a skip, an error) is acked the usual way. A message settled but not
yet acked when the worker dies is simply gone from the unacked set: its delivery is already
recorded (delivered, dead, or retrying with a deadline the reconciler watches).

The race: a worker must survive Redis going away.

kombu 5.7: when Redis dies while tasks are in flight (acks_late), Celery closes the broken
connection, which detaches the transport from the channel (``transport.client = None``). A
channel left behind then needs a fresh connection pool: to restore its unacked messages on a
second close, or to ack/reject a message whose task finishes after the reconnect. Building
that pool reads ``transport.client.hostname`` and raises AttributeError, which Celery treats
as unrecoverable: the worker exits instead of reconnecting. Here a detached channel raises a
connection error instead, which every one of those callers already tolerates. The messages
concerned stay in Redis's ``unacked`` set and come back after the visibility timeout.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import redis
from celery import bootsteps
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

from webhooks.enqueue import DELIVER_TASK
from webhooks.state import BrokerMessage, Claim, TakenMessage, get_store

__all__ = ["Transport", "broker_message", "settled", "claimed", "claim_on_take", "ClaimOnTake", "CLAIM_FRESH_S"]

CLAIM_FRESH_S = 5.0
log = logging.getLogger("webhooks.transport")

# (unacked index, unacked hash) as named in Redis, once a channel of this transport exists.
_unacked_keys: tuple[str, str] | None = None
_settled: set[str] = set()
_lock = threading.Lock()
_claim_on_take = False
_claims: dict[Any, tuple[Claim, float]] = {}


def claim_on_take(enabled: bool) -> None:
    """Claim deliveries as their messages are taken (a pool that runs tasks in this process)."""
    global _claim_on_take
    _claim_on_take = enabled


def claimed(delivery_tag: Any) -> Claim | None:
    """The claim made when the message ``delivery_tag`` was taken, if still fresh (once)."""
    with _lock:
        made = _claims.pop(delivery_tag, None)
    if made is None or time.monotonic() - made[1] > CLAIM_FRESH_S:
        return None
    return made[0]


def _runs_now(message: Any) -> str | None:
    """The delivery id of a ``webhooks.deliver`` message without an ETA, else None."""
    headers = message.headers or {}
    if headers.get("task") != DELIVER_TASK or headers.get("eta"):
        return None
    try:
        args = message.payload[0]
        return str(args[0]) if args else None
    except Exception:  # noqa: BLE001 - not ours to judge here: the task will say what is wrong
        return None


def broker_message(delivery_tag: str | None) -> BrokerMessage | None:
    """The message ``delivery_tag`` as ``settle`` can ack it, or None (no tag, or the worker
    does not consume through this transport: an eager call, another broker)."""
    keys = _unacked_keys
    if not delivery_tag or keys is None:
        return None
    return BrokerMessage(str(delivery_tag), keys[0], keys[1])


def settled(message: BrokerMessage | None) -> None:
    """``message`` was taken out of the unacked bookkeeping by ``settle``: its ack is local."""
    if message is not None and message.done:
        with _lock:
            _settled.add(message.tag)


def _take_settled(delivery_tag: Any) -> bool:
    with _lock:
        if delivery_tag in _settled:
            _settled.discard(delivery_tag)
            return True
    return False


class QoS(kombu_redis.QoS):  # type: ignore[misc]
    def append(self, message: Any, delivery_tag: Any) -> None:
        keys = _unacked_keys
        did = _runs_now(message) if _claim_on_take and keys is not None else None
        if did is None:
            super().append(message, delivery_tag)
            return
        info = message.delivery_info
        # kombu's own record of the taken message (the same JSON its restore reads back)
        entry = dumps([message._raw, info["exchange"], info["routing_key"]])
        try:
            claim = get_store().claim(did, TakenMessage(str(delivery_tag), keys[0], keys[1], entry, time.time()))
        except redis.RedisError:
            raise  # as kombu's own bookkeeping would: the consumer reconnects
        except Exception:  # noqa: BLE001 - never lose a message over a claim: record it as kombu does
            log.exception("claiming delivery %s as its message was taken failed; the task will claim it", did)
            super().append(message, delivery_tag)
            return
        virtual.QoS.append(self, message, delivery_tag)
        now = time.monotonic()
        with _lock:
            if len(_claims) > 10_000:  # tasks that never ran (a shutdown): forget the stale ones
                for tag in [t for t, (_, at) in _claims.items() if now - at > CLAIM_FRESH_S]:
                    del _claims[tag]
            _claims[delivery_tag] = (claim, now)

    def ack(self, delivery_tag: Any) -> None:
        if _take_settled(delivery_tag):
            virtual.QoS.ack(self, delivery_tag)  # local bookkeeping only: Redis already has it
            return
        super().ack(delivery_tag)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if _take_settled(delivery_tag):  # settled: nothing left in Redis to restore or remove
            virtual.QoS.ack(self, delivery_tag)
            return
        super().reject(delivery_tag, requeue=requeue)


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    QoS = QoS
    _sync_client: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        global _unacked_keys
        prefix = getattr(self, "global_keyprefix", "") or ""
        _unacked_keys = (prefix + self.unacked_index_key, prefix + self.unacked_key)

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool  # raises a connection error on a detached channel (see _connparams)
        cached = self._sync_client
        if cached is None or cached.connection_pool is not pool:
            cached = self._sync_client = self._create_client()
        yield cached

    def _connparams(self, asynchronous: bool = False) -> Any:
        if getattr(self.connection, "client", None) is None:
            raise redis.ConnectionError("this channel's broker connection was closed (Redis went away)")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel


class ClaimOnTake(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep: claim as messages are taken when the pool runs tasks in this process
    (threads, solo); a prefork child could not see the claim, so there the task claims."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        pool = type(getattr(c, "pool", None)).__module__
        claim_on_take(pool in ("celery.concurrency.thread", "celery.concurrency.solo"))

    def stop(self, c: Any) -> None:
        claim_on_take(False)

    shutdown = stop
