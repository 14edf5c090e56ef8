"""The dead-letter store: deliveries that never got through, per account, replayable.

Written idempotently (HSETNX keyed by delivery id) because two paths write it: the
task's ``on_failure`` and the ``task_failure`` signal (a killed pool child calls only
the second). The event payload stays in Redis while a dead letter refers to it.
"""
from __future__ import annotations

import json
import time
from typing import Any, Iterable

from . import audit, records
from .connection import get_redis
from .enqueue import DELIVER_TASK, RETRIES_QUEUE, task_message
from .errors import NotFound, ValidationError
from .ids import check_account
from .keys import K
from .settings import get_settings

__all__ = ["record", "list_dead", "get", "replay", "purge", "ReplayResult"]

_RECORD_LUA = """
-- KEYS: dead hash, dead index, delivery record, in-flight set;  ARGV: delivery id, entry json, now, ttl
redis.call('ZREM', KEYS[4], ARGV[1])
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('HSET', KEYS[3], 'status', 'dead', 'updated', ARGV[3], 'reason', ARGV[5])
return 1
"""


def record(delivery_id: str, reason: str | None = None, *, error: str | None = None, status: int | None = None) -> bool:
    """Dead-letter ``delivery_id`` once. Returns True when this call wrote it.

    The reason is a short class ("exhausted", "gone", "url_refused", "transform", ...): the
    one the delivery logic stored in the record wins over the caller's ``reason``.
    """
    rec = records.load(delivery_id)
    if rec is None:
        return False
    reason = rec.get("reason") or reason or "failed"
    now = time.time()
    entry = {
        "delivery_id": delivery_id,
        "account": rec["account"],
        "subscription_id": rec["sub"],
        "event_id": rec["evt"],
        "type": rec["type"],
        "reason": reason,
        "error": rec.get("last_error") or error or None,
        "status": status if status is not None else (int(rec["last_status"]) if rec.get("last_status") else None),
        "attempts": int(rec.get("attempts") or 0),
        "created": float(rec["created"]),
        "died_at": now,
    }
    r = get_redis()
    account = rec["account"]
    wrote = r.register_script(_RECORD_LUA)(
        keys=[K.dead(account), K.dead_index(account), K.delivery(delivery_id), K.inflight()],
        args=[delivery_id, json.dumps(entry), repr(now), get_settings().dead_letter_retention_s, reason],
    )
    return bool(wrote)


def get(account: str, delivery_id: str) -> dict[str, Any]:
    """One dead letter of ``account``. Raises NotFound."""
    check_account(account)
    raw = get_redis().hget(K.dead(account), delivery_id)
    if raw is None:
        raise NotFound(f"no dead letter {delivery_id} in account {account}")
    return json.loads(raw)


def list_dead(
    account: str,
    *,
    subscription_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int | None = 100,
) -> list[dict[str, Any]]:
    """Dead letters of ``account``, oldest first, filtered by subscription and death time."""
    check_account(account)
    r = get_redis()
    ids = r.zrangebyscore(K.dead_index(account), since if since is not None else "-inf", until if until is not None else "+inf")
    if not ids:
        return []
    out = []
    for raw in r.hmget(K.dead(account), ids):
        if raw is None:
            continue
        e = json.loads(raw)
        if subscription_id and e["subscription_id"] != subscription_id:
            continue
        out.append(e)
        if limit is not None and len(out) >= limit:
            break
    return out


class ReplayResult(dict):  # type: ignore[type-arg]
    """{"replayed": [ids], "skipped": {id: reason}}"""


def _select(account: str, ids: Iterable[str] | None, subscription_id: str | None, since: float | None, all_: bool) -> list[dict[str, Any]]:
    if ids:
        ids = list(ids)
        check_account(account)
        raws = get_redis().hmget(K.dead(account), ids)
        missing = [i for i, raw in zip(ids, raws) if raw is None]
        if missing:
            raise NotFound(f"no dead letter {missing[0]} in account {account}")
        return [json.loads(raw) for raw in raws]
    if not (all_ or subscription_id or since is not None):
        raise ValidationError("say which dead letters: ids, --all, --subscription or --since", {"selection": ["empty"]})
    return list_dead(account, subscription_id=subscription_id, since=since, limit=None)


def replay(
    account: str,
    ids: Iterable[str] | None = None,
    *,
    subscription_id: str | None = None,
    since: float | None = None,
    all_: bool = False,
    actor: str | None = None,
    progress: Any = None,
) -> ReplayResult:
    """Re-send dead letters: each goes back on the retries queue with the same delivery id
    (so the same ``webhook-id``), a fresh schedule and, at send time, a fresh signature.
    An entry leaves the store in the same transaction that enqueues its re-send.
    Only to its own subscription, and only if it still exists and is enabled.
    """
    from . import subscriptions

    r = get_redis()
    result = ReplayResult(replayed=[], skipped={})
    subs: dict[str, Any] = {}  # a replay of one endpoint's backlog looks it up once
    for e in _select(account, ids, subscription_id, since, all_):
        did = e["delivery_id"]
        sid = e["subscription_id"]
        if sid not in subs:
            try:
                subs[sid] = subscriptions.get(account, sid)
            except NotFound:
                subs[sid] = None
        sub = subs[sid]
        if sub is None:
            result["skipped"][did] = "subscription no longer exists"
            continue
        if not sub.enabled:
            result["skipped"][did] = f"subscription {sub.id} is disabled (enable it first)"
            continue
        if not r.exists(K.event(e["event_id"])):
            result["skipped"][did] = "event payload expired"
            continue
        pipe = r.pipeline(transaction=True)
        records.create(did, account=account, sub_id=sub.id, event_id=e["event_id"], event_type=e["type"],
                       created=e["created"], ttl_s=get_settings().attempt_retention_s, pipe=pipe, replays=1)
        pipe.lpush(RETRIES_QUEUE, task_message(DELIVER_TASK, [did], RETRIES_QUEUE))
        records.touch(did, pipe=pipe, add=True)
        pipe.hdel(K.dead(account), did)
        pipe.zrem(K.dead_index(account), did)
        pipe.execute()
        result["replayed"].append(did)
        if progress is not None:
            progress(did)
    if result["replayed"]:
        audit.record(account, "replay", changes={"count": len(result["replayed"]), "subscription": subscription_id, "since": since}, actor=actor)
    return result


def purge(account: str, ids: Iterable[str] | None = None, *, all_: bool = False, subscription_id: str | None = None, since: float | None = None, actor: str | None = None) -> int:
    """Delete dead letters for good; their payloads are released. Returns how many."""
    r = get_redis()
    chosen = _select(account, ids, subscription_id, since, all_)
    for e in chosen:
        pipe = r.pipeline(transaction=True)
        pipe.hdel(K.dead(account), e["delivery_id"])
        pipe.zrem(K.dead_index(account), e["delivery_id"])
        pipe.hset(K.delivery(e["delivery_id"]), mapping={"status": "discarded", "reason": "dead letter purged"})
        pipe.execute()
        release_payload(e["event_id"])
    if chosen:
        audit.record(account, "purge", changes={"count": len(chosen)}, actor=actor)
    return len(chosen)


def release_payload(event_id: str) -> None:
    """One delivery of ``event_id`` has ended for good: drop the payload after the last."""
    r = get_redis()
    left = r.decr(K.event_refs(event_id))
    if left <= 0:
        r.delete(K.event(event_id), K.event_refs(event_id))
