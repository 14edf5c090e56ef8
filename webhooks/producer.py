"""publish(): validate, store the event once, enqueue one task per matching subscription.

Cost: one HGETALL (the account's subscriptions) and, when anything matches, one atomic
Lua call that writes the payload, the delivery records and every task message. Either
all of it lands or none of it: nothing is half-enqueued.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import redis

from . import events
from .connection import get_redis
from .enqueue import DELIVER_TASK, DELIVERIES_QUEUE, task_message
from .errors import PublishError, ValidationError
from .ids import check_account, new_id
from .keys import K
from .settings import Settings, get_settings
from .subscriptions import Subscription, readable

__all__ = ["PublishedEvent", "publish", "enqueue_envelope"]

log = logging.getLogger("webhooks.producer")

_PUBLISH_LUA = """
-- KEYS: seen-marker, event, event-refs, account delivery index, queue, in-flight set
-- ARGV: body, ttl, n, account, event id, type, now, oldest-kept, progress deadline,
--       then (delivery id, sub id, message)*
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) == false then return -1 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[8])
local i = 10
while i <= #ARGV do
  local dk = 'wh:dlv:' .. ARGV[i]
  redis.call('HSET', dk, 'account', ARGV[4], 'sub', ARGV[i + 1], 'evt', ARGV[5], 'type', ARGV[6],
             'status', 'pending', 'created', ARGV[7], 'updated', ARGV[7], 'retries', 0, 'attempts', 0)
  redis.call('EXPIRE', dk, ARGV[2])
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[i])
  redis.call('ZADD', KEYS[6], ARGV[9], ARGV[i])
  redis.call('LPUSH', KEYS[5], ARGV[i + 2])
  i = i + 3
end
return tonumber(ARGV[3])
"""


# Index (0-based) in the script's ARGV where the (delivery id, sub id, message) triples begin.
DELIVERY_ARGS_START = 9


@dataclass(frozen=True)
class PublishedEvent:
    """What publish() did: the event id, and how many deliveries it enqueued."""

    id: str
    type: str
    account: str
    deliveries: int
    delivery_ids: tuple[str, ...] = field(default=(), repr=False)
    duplicate: bool = False
    spooled: bool = False


_compiled_lock = threading.Lock()
_compiled: "OrderedDict[tuple[str, float], Any]" = OrderedDict()


def _transform_for(sub: Subscription) -> Any:
    """The compiled transform of ``sub`` (cached by id and update time), or None."""
    if not sub.transform:
        return None
    key = (sub.id, sub.updated_at)
    with _compiled_lock:
        hit = _compiled.get(key)
        if hit is not None:
            _compiled.move_to_end(key)
            return hit
    from .transform import compile_spec

    compiled = compile_spec(sub.transform)
    with _compiled_lock:
        _compiled[key] = compiled
        while len(_compiled) > 4096:
            _compiled.popitem(last=False)
    return compiled


def _matches(sub: Subscription, envelope: dict[str, Any], budget: Any = None) -> bool:
    """Whether ``sub`` gets ``envelope``. Filters run on the account's shared ``budget``
    (a ``FilterBudget``); past it, the subscription is enqueued unfiltered."""
    if not sub.enabled or not sub.wants(envelope["type"]):
        return False
    try:
        t = _transform_for(sub)
    except ValidationError:
        # A stored spec that no longer compiles (limits changed since it was saved): enqueue,
        # so the delivery dead-letters with reason "transform" where an operator sees it,
        # rather than silently dropping events or failing the whole account's publish.
        log.error("subscription %s of account %s has a transform that no longer compiles", sub.id, sub.account)
        return True
    if t is None:
        return True
    if budget is None:
        return t.accepts(envelope)
    decided = t.decide(envelope, budget)
    return True if decided is None else decided


def _match_all(account: str, subs: list[Subscription], envelope: dict[str, Any]) -> list[Subscription]:
    """The subscriptions that get ``envelope``, oldest first; their filters share one budget."""
    from .transform.filters import FilterBudget

    budget = FilterBudget()
    matched = [sub for sub in sorted(subs, key=lambda x: x.created_at) if _matches(sub, envelope, budget)]
    if budget.unfiltered:
        log.warning(
            "account %s: filters spent the shared work budget of one publish; %d subscription(s) got event %s unfiltered",
            account, budget.unfiltered, envelope["id"],
        )
    return matched


def _payload_ttl_s(s: Settings) -> int:
    # The payload must outlive the whole retry schedule and then its dead letters.
    return int(sum(s.retry_schedule_s) * (1 + s.retry_jitter) + s.dead_letter_retention_s + 3600)


def enqueue_envelope(account: str, envelope: dict[str, Any], body: bytes) -> PublishedEvent:
    """Match and enqueue an already validated envelope. Raises redis errors as they come."""
    s = get_settings()
    r = get_redis()
    raw = r.hgetall(K.subs(account))
    if not raw:
        return PublishedEvent(envelope["id"], envelope["type"], account, 0)
    subs = readable(account, raw)
    matched = _match_all(account, subs, envelope)
    if not matched:
        return PublishedEvent(envelope["id"], envelope["type"], account, 0)
    import time

    now = time.time()
    ttl = _payload_ttl_s(s)
    argv: list[Any] = [body, ttl, len(matched), account, envelope["id"], envelope["type"], repr(now), repr(now - s.attempt_retention_s), repr(now + s.progress_deadline_s)]
    assert len(argv) == DELIVERY_ARGS_START
    ids = []
    for sub in matched:
        did = new_id("msg")
        ids.append(did)
        argv += [did, sub.id, task_message(DELIVER_TASK, [did], DELIVERIES_QUEUE)]
    keys = [f"wh:evt:{envelope['id']}:seen", K.event(envelope["id"]), K.event_refs(envelope["id"]), K.deliveries(account), DELIVERIES_QUEUE, K.inflight()]
    n = _script(r)(keys=keys, args=argv)
    if n == -1:
        return PublishedEvent(envelope["id"], envelope["type"], account, 0, duplicate=True)
    return PublishedEvent(envelope["id"], envelope["type"], account, int(n), tuple(ids))


_scripts: dict[int, Any] = {}


def _script(r: redis.Redis) -> Any:
    sc = _scripts.get(id(r))
    if sc is None:
        sc = _scripts[id(r)] = r.register_script(_PUBLISH_LUA)
    return sc


def publish(account: str, event_type: str, data: Any, *, event_id: str | None = None) -> PublishedEvent:
    """Publish one chat event to every matching subscription of ``account``.

    Validates ``data`` against the event type's schema, stores the event once and
    enqueues one delivery task per matching subscription (ids only in the task).
    Call it after your database transaction commits. Publishing the same ``event_id``
    twice enqueues once (the second returns ``duplicate=True``).

    Raises:
        ValidationError / UnknownEventType / PayloadTooLarge: bad input; nothing enqueued.
        PublishError: Redis could not be reached within WEBHOOKS_PUBLISH_TIMEOUT_S;
            nothing enqueued (or, with WEBHOOKS_OUTBOX set, the event is spooled instead).
    Returns:
        PublishedEvent with the event id and the number of deliveries enqueued.
    """
    check_account(account)
    envelope = events.build_envelope(event_type, data, event_id=event_id)
    body = events.serialize(envelope)
    settings = get_settings()
    events.check_size(body, settings.max_payload_bytes)
    if settings.outbox_path:
        from . import outboxing

        behind = outboxing.spool_if_backlog(account, envelope)
        if behind is not None:
            return behind
    try:
        return enqueue_envelope(account, envelope, body)
    except redis.RedisError as exc:
        from . import outboxing

        spooled = outboxing.spool_if_enabled(account, envelope)
        if spooled is not None:
            return spooled
        raise PublishError(
            f"could not reach Redis to publish {envelope['type']} {envelope['id']} for account {account}: "
            f"{type(exc).__name__}; nothing was enqueued"
        ) from None
