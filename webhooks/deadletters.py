"""The dead-letter store: deliveries that never got through, per account, replayable.

Written once, by the state machine: ``settle`` writes the dead letter of an attempt that
ended the delivery, with its reason; ``record`` is the fallback for a task that failed
outside an attempt (a killed pool child), idempotent (HSETNX keyed by delivery id). The
event payload stays in Redis while a dead letter refers to it.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from . import audit
from .connection import get_redis
from .errors import NotFound, ValidationError
from .ids import check_account
from .keys import K
from .state import get_store

__all__ = ["record", "list_dead", "get", "replay", "purge", "ReplayResult"]

def record(delivery_id: str, reason: str | None = None, *, error: str | None = None) -> bool:
    """Dead-letter ``delivery_id`` once, when its task failed outside an attempt (a killed
    pool child, an unexpected error); an attempt's own dead letters are written by ``settle``.
    The reason stored in the record wins over ``reason``. Returns True when this call wrote it."""
    return get_store().dead_letter(delivery_id, reason, error)


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

    store = get_store()
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
        done = store.replay(e, e.get("v"))
        if done == -1:
            result["skipped"][did] = "event payload expired"
            continue
        if done == 0:
            result["skipped"][did] = "no longer a dead letter"
            continue
        result["replayed"].append(did)
        if progress is not None:
            progress(did)
    if result["replayed"]:
        audit.record(account, "replay", changes={"count": len(result["replayed"]), "subscription": subscription_id, "since": since}, actor=actor)
    return result


def purge(account: str, ids: Iterable[str] | None = None, *, all_: bool = False, subscription_id: str | None = None, since: float | None = None, actor: str | None = None) -> int:
    """Delete dead letters for good; their payloads are released. Returns how many."""
    store = get_store()
    chosen = [e for e in _select(account, ids, subscription_id, since, all_) if store.purge(e, e.get("v"))]
    if chosen:
        audit.record(account, "purge", changes={"count": len(chosen)}, actor=actor)
    return len(chosen)
