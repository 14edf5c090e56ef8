"""Moves parked deliveries from the parked sorted set back onto the queue: long-tier
retries when they are due (``move_due``, run by beat), and deliveries waiting for an
endpoint's slot (``wake_one``; ``settle`` already wakes one after every attempt, so this
is for callers outside an attempt).

Safe to run twice at once, and the two against each other: each id is moved only by the
caller whose ZREM on the parked set removed it, inside the same Lua call that pushes its
message (``webhooks/state/lua/move_due.lua``, ``wake.lua``), so it is never lost or doubled.
"""
from __future__ import annotations

import time

from .keys import K
from .state import get_store

__all__ = ["move_due", "wake_one"]

_WAKE_CANDIDATES = 4


def wake_one(endpoint: str) -> str | None:
    """Move the oldest delivery waiting for a slot of ``endpoint`` onto the retries queue
    now, instead of at its fallback time; returns its id, or None when none was waiting.
    Racing callers wake different deliveries."""
    store = get_store()
    waiting = store.redis.zrange(K.slot_waiters(endpoint), 0, _WAKE_CANDIDATES - 1)
    if not waiting:
        return None
    return store.wake(endpoint, waiting)


def move_due(now: float | None = None, batch: int = 500) -> int:
    """Move every parked delivery due by ``now``; returns how many this call moved."""
    store = get_store()
    now = time.time() if now is None else now
    total = 0
    while True:
        due = store.redis.zrangebyscore(K.parked(), "-inf", now, start=0, num=batch)
        if not due:
            return total
        total += store.move_due(due)
        if len(due) < batch:
            return total
