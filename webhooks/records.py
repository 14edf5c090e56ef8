"""Delivery records and the attempt log, in Redis.

A delivery is one (event, subscription) pair, id ``msg_…``, which is also its
``webhook-id``: the same on every attempt and replay so receivers can de-duplicate.
Record fields: account, sub, evt, type, status, retries (schedule position), attempts
(all attempts ever), created, updated, last_status, last_error, reason.
Statuses: pending, retrying, parked, delivered, dead, discarded.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from .connection import get_redis
from .keys import K
from .settings import get_settings

__all__ = ["Attempt", "create", "load", "update", "touch", "log_attempt", "attempts", "list_for_account", "ENDED"]

ENDED = frozenset({"delivered", "dead", "discarded"})


@dataclass(frozen=True)
class Attempt:
    """One attempt: when, how long, and how it ended (never the request body or headers)."""

    delivery_id: str
    subscription_id: str
    number: int
    at: float
    duration_ms: float
    status: int | None
    error: str | None
    verdict: str
    response: str | None = None


def _decode(h: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in h.items()}


def load(delivery_id: str, *, touch_it: bool = False) -> dict[str, str] | None:
    """The record of ``delivery_id``, or None when unknown or expired; with ``touch_it``,
    also record progress (``touch``) in the same round trip."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.hgetall(K.delivery(delivery_id))
    if touch_it:
        touch(delivery_id, pipe=pipe)
    h = pipe.execute()[0]
    return _decode(h) if h else None


def create(delivery_id: str, *, account: str, sub_id: str, event_id: str, event_type: str, created: float | str,
           ttl_s: int, pipe: Any, **extra: Any) -> None:
    """Write a pending delivery record and index it for the account's listings (in ``pipe``).
    The producer's fan-out script writes the same fields in Lua."""
    now = time.time()
    mapping = {"account": account, "sub": sub_id, "evt": event_id, "type": event_type, "status": "pending",
               "retries": 0, "created": created if isinstance(created, str) else repr(created),
               "updated": repr(now), **extra}
    pipe.hset(K.delivery(delivery_id), mapping=mapping)
    pipe.expire(K.delivery(delivery_id), ttl_s)
    pipe.zadd(K.deliveries(account), {delivery_id: now})


def touch(delivery_id: str, *, after_s: float = 0.0, pipe: Any = None, add: bool = False) -> None:
    """Record progress: ``delivery_id`` is expected to show progress again within
    ``after_s`` plus WEBHOOKS_RECONCILE_AFTER_S, or the reconciler looks for its message.
    Only deliveries still in flight are touched unless ``add``."""
    due = time.time() + after_s + get_settings().progress_deadline_s
    (pipe if pipe is not None else get_redis()).zadd(K.inflight(), {delivery_id: due}, xx=not add)


def update(delivery_id: str, pipe: Any = None, **fields: Any) -> None:
    """Set fields of a delivery record (and ``updated``)."""
    mapping = {k: ("" if v is None else str(v)) for k, v in fields.items()}
    mapping["updated"] = repr(time.time())
    (pipe if pipe is not None else get_redis()).hset(K.delivery(delivery_id), mapping=mapping)


def log_attempt(attempt: Attempt, pipe: Any = None) -> None:
    """Append an attempt (newest first), keep the newest N, expire with the retention.
    With ``pipe`` the writes join the caller's pipeline (the caller executes it)."""
    s = get_settings()
    key = K.attempts(attempt.delivery_id)
    own = pipe is None
    pipe = get_redis().pipeline(transaction=False) if own else pipe
    pipe.lpush(key, json.dumps(asdict(attempt), separators=(",", ":")))
    pipe.ltrim(key, 0, s.attempts_per_delivery - 1)
    pipe.expire(key, s.attempt_retention_s)
    pipe.hincrby(K.delivery(attempt.delivery_id), "attempts", 1)
    if own:
        pipe.execute()


def attempts(delivery_id: str) -> list[dict[str, Any]]:
    """Attempts of one delivery, oldest first."""
    raw = get_redis().lrange(K.attempts(delivery_id), 0, -1)
    return [json.loads(r) for r in reversed(raw)]


def list_for_account(
    account: str, *, subscription_id: str | None = None, failed: bool = False, limit: int = 50
) -> list[dict[str, str]]:
    """Newest deliveries of ``account`` (records with their id), optionally filtered."""
    r = get_redis()
    out: list[dict[str, str]] = []
    start = 0
    page = max(limit, 100)
    while len(out) < limit:
        ids = r.zrevrange(K.deliveries(account), start, start + page - 1)
        if not ids:
            break
        start += page
        pipe = r.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(K.delivery(i.decode()))
        for i, h in zip(ids, pipe.execute()):
            if not h:
                continue
            rec = _decode(h)
            rec["id"] = i.decode()
            if subscription_id and rec.get("sub") != subscription_id:
                continue
            if failed and rec.get("status") not in {"dead", "retrying", "parked"} and not rec.get("last_error"):
                continue
            out.append(rec)
            if len(out) >= limit:
                break
    return out
