"""The reconciler: finds deliveries whose task message was lost, and sends them again.

kombu's Redis transport takes a message with BRPOP and only then records it as unacked
(kombu issue #305): a worker or Redis killed between the two loses the message, and its
delivery would stay "pending" for ever. Every delivery not yet ended is therefore in the
``wh:inflight`` sorted set, scored by the time it must show progress by (publish, each
attempt, a scheduled retry, a park and the mover all push it forward; an end removes it).
Beat runs ``reconcile()`` every few seconds. A delivery past its time whose message is in
no queue, not unacked and not parked is re-enqueued on the retries queue, with the same
delivery id (so the same ``webhook-id``). Safe to run twice at once: the re-send happens
in one Lua call (``state/lua/resend.lua``) that first checks the delivery is still overdue.
"""
from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any, Iterable

from .enqueue import DELIVERIES_QUEUE, RETRIES_QUEUE
from .keys import K
from .state import ENDED, get_store
from .settings import get_settings

__all__ = ["reconcile", "scan_interval_s", "UNACKED_KEY", "MAX_SCAN", "SCAN_LOCK_KEY"]

log = logging.getLogger("webhooks.reconcile")

UNACKED_KEY = "unacked"  # kombu's Redis transport default (unacked_key)
MAX_SCAN = 200_000  # messages looked at per run at most; a longer backlog is looked at later
SCAN_LOCK_KEY = "wh:reconcile:scan"


def scan_interval_s() -> float:
    """Least time between two full looks at the queues: a tenth of the progress deadline, at least 5 s."""
    return max(5.0, get_settings().progress_deadline_s / 10)

def _ids_in(messages: Iterable[bytes], unacked: bool = False) -> set[str]:
    ids: set[str] = set()
    for raw in messages:
        try:
            m = json.loads(raw)
            if unacked:
                m = m[0]
            body = m["body"]
            if m.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            if args:
                ids.add(str(args[0]))
        except (ValueError, KeyError, IndexError, TypeError):
            continue
    return ids


def _in_transit(r: Any) -> set[str] | None:
    """Delivery ids that have a message in a queue or held unacked; None when too many to look at."""
    sizes = [r.llen(DELIVERIES_QUEUE), r.llen(RETRIES_QUEUE), r.hlen(UNACKED_KEY)]
    if sum(sizes) > MAX_SCAN:
        return None
    ids = _ids_in(r.lrange(DELIVERIES_QUEUE, 0, -1)) | _ids_in(r.lrange(RETRIES_QUEUE, 0, -1))
    return ids | _ids_in(r.hvals(UNACKED_KEY), unacked=True)


def reconcile(now: float | None = None, limit: int = 1000) -> dict[str, int]:
    """Re-send overdue deliveries whose message is nowhere. Returns counts:
    {"overdue", "resent", "in_transit", "ended", "skipped"} ("skipped": overdue, but another
    look at the queues happened less than ``scan_interval_s()`` ago)."""
    store = get_store()
    r = store.redis
    now = time.time() if now is None else now
    deadline = repr(now + get_settings().progress_deadline_s)
    overdue = [d.decode() for d in r.zrangebyscore(K.inflight(), "-inf", now, start=0, num=limit)]
    counts = {"overdue": len(overdue), "resent": 0, "in_transit": 0, "ended": 0, "skipped": 0}
    if not overdue:
        return counts
    # Reading every queued and unacked message costs; in a long backlog deliveries keep
    # falling overdue while still queued. So one full look per interval, across all callers.
    if not r.set(SCAN_LOCK_KEY, "1", nx=True, px=int(scan_interval_s() * 1000)):
        counts["skipped"] = len(overdue)
        return counts
    transit = _in_transit(r)
    if transit is None:
        log.warning("reconcile: over %d messages queued or unacked; looking again later", MAX_SCAN)
        r.zadd(K.inflight(), {d: float(deadline) for d in overdue}, xx=True)
        return counts
    pipe = r.pipeline(transaction=False)
    for did in overdue:
        pipe.hget(K.delivery(did), "status")
        pipe.zscore(K.parked(), did)
    answers = pipe.execute()
    for i, did in enumerate(overdue):
        status, parked = answers[2 * i], answers[2 * i + 1]
        if status is None or status.decode() in ENDED:
            r.zrem(K.inflight(), did)
            counts["ended"] += 1
        elif did in transit or parked is not None:
            r.zadd(K.inflight(), {did: float(deadline)}, xx=True)
            counts["in_transit"] += 1
        elif store.resend(did, RETRIES_QUEUE, now, float(deadline)):
            counts["resent"] += 1
            log.warning("reconcile: delivery %s had no message anywhere (lost between BRPOP and unacked); re-sent", did)
    return counts
