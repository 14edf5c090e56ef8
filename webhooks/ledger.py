"""The delivery ledger: every enqueued delivery is delivered, dead, discarded (with a
reason) or still pending. Counted from the delivery records themselves, per account and
subscription, over a window of creation time (within the attempt retention)."""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

from .connection import get_redis
from .ids import check_account
from .keys import K
from .state import IN_PROGRESS

__all__ = ["counts", "PENDING_STATES"]

PENDING_STATES = IN_PROGRESS  # every status that is not an end


def counts(account: str, *, since: float | None = None, until: float | None = None) -> dict[str, Any]:
    """{"total": {...}, "subscriptions": {sub_id: {"delivered", "dead", "discarded", "pending", "duplicates", "enqueued"}}}."""
    check_account(account)
    r = get_redis()
    ids = r.zrangebyscore(K.deliveries(account), since if since is not None else "-inf", until if until is not None else time.time() + 1)
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        pipe = r.pipeline(transaction=False)
        for i in chunk:
            pipe.hmget(K.delivery(i.decode()), "sub", "status", "duplicates")
        for sub, status, dups in pipe.execute():
            if sub is None:
                continue
            c = per[sub.decode()]
            st = status.decode() if status else "pending"
            c["enqueued"] += 1
            c["pending" if st in PENDING_STATES else st] += 1
            c["duplicates"] += int(dups or 0)
    total: Counter[str] = Counter()
    for c in per.values():
        total.update(c)
    keys = ("enqueued", "delivered", "dead", "discarded", "pending", "duplicates")
    return {
        "total": {k: total.get(k, 0) for k in keys},
        "subscriptions": {s: {k: c.get(k, 0) for k in keys} for s, c in sorted(per.items())},
    }
