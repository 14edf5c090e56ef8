"""Delivery records and the attempt log, in Redis.

A delivery is one (event, subscription) pair, id ``msg_…``, which is also its
``webhook-id``: the same on every attempt and replay so receivers can de-duplicate.
Record fields: account, sub, evt, type, v (key layout), status, retries (schedule
position), attempts (all attempts ever), created, updated, last_status, last_error, reason,
due, delivered_at, duplicates, reconciled, replays. A new record holds only what is not a
default: ``load`` gives retries and attempts 0 and updated = created when absent. The statuses and every write of them
belong to ``webhooks.state``; this module reads.
"""
from __future__ import annotations

import json
from typing import Any

from .connection import get_redis
from .keys import K
from .state import ENDED, STATUSES, Attempt

__all__ = ["Attempt", "load", "attempts", "list_for_account", "ENDED", "STATUSES"]

def _decode(h: dict[bytes, bytes]) -> dict[str, str]:
    rec = {k.decode(): v.decode() for k, v in h.items()}
    # publish leaves out what starts at zero or equals another field (one HSET per delivery
    # of every event: fewer fields is less Redis work on the hottest write)
    rec.setdefault("retries", "0")
    rec.setdefault("attempts", "0")
    if "created" in rec:
        rec.setdefault("updated", rec["created"])
    return rec

def load(delivery_id: str) -> dict[str, str] | None:
    """The record of ``delivery_id``, or None when unknown or expired."""
    h = get_redis().hgetall(K.delivery(delivery_id))
    return _decode(h) if h else None

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
