"""Moves parked deliveries from the parked sorted set back onto the queue: long-tier
retries when they are due (``move_due``, run by beat), and deliveries waiting for an
endpoint's slot as soon as one is released (``wake_one``).

Safe to run twice at once, and the two against each other: each id is moved only by the
caller whose ZREM on the parked set removed it, inside the same Lua call that pushes its
message, so it is never lost or doubled.
"""
from __future__ import annotations

import time

from .connection import get_redis
from .enqueue import DELIVER_TASK, RETRIES_QUEUE, task_message
from .keys import K
from .settings import get_settings

__all__ = ["move_due", "wake_one"]

_MOVE_LUA = """
-- KEYS: parked, queue, in-flight; ARGV: progress deadline, (delivery id, message)*
local moved = 0
for i = 2, #ARGV, 2 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    redis.call('ZADD', KEYS[3], ARGV[1], ARGV[i])
    redis.call('HSET', 'wh:dlv:' .. ARGV[i], 'status', 'retrying')
    moved = moved + 1
  end
end
return moved
"""


_WAKE_LUA = """
-- KEYS: parked, queue, waiters, in-flight; ARGV: progress deadline, (delivery id, message)*,
-- oldest first. Wakes the first candidate still parked; the others stay waiting (or were
-- moved already).
for i = 2, #ARGV, 2 do
  redis.call('ZREM', KEYS[3], ARGV[i])
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    redis.call('ZADD', KEYS[4], ARGV[1], ARGV[i])
    redis.call('HSET', 'wh:dlv:' .. ARGV[i], 'status', 'retrying')
    return ARGV[i]
  end
end
return false
"""

_WAKE_CANDIDATES = 4


def _args(ids: list[bytes]) -> list[str]:
    """The scripts' ARGV: the new progress deadline, then (delivery id, its message) pairs."""
    argv = [repr(time.time() + get_settings().progress_deadline_s)]
    for raw in ids:
        did = raw.decode()
        argv += [did, task_message(DELIVER_TASK, [did], RETRIES_QUEUE)]
    return argv


def wake_one(endpoint: str) -> str | None:
    """Move the oldest delivery waiting for a slot of ``endpoint`` onto the retries queue
    now, instead of at its fallback time; returns its id, or None when none was waiting.
    Call it after releasing a slot. Racing callers wake different deliveries."""
    r = get_redis()
    waiting = r.zrange(K.slot_waiters(endpoint), 0, _WAKE_CANDIDATES - 1)
    if not waiting:
        return None
    woken = r.register_script(_WAKE_LUA)(keys=[K.parked(), RETRIES_QUEUE, K.slot_waiters(endpoint), K.inflight()],
                                         args=_args(waiting))
    return woken.decode() if isinstance(woken, bytes) else None


def move_due(now: float | None = None, batch: int = 500) -> int:
    """Move every parked delivery due by ``now``; returns how many this call moved."""
    r = get_redis()
    now = time.time() if now is None else now
    total = 0
    while True:
        due = r.zrangebyscore(K.parked(), "-inf", now, start=0, num=batch)
        if not due:
            return total
        total += int(r.register_script(_MOVE_LUA)(keys=[K.parked(), RETRIES_QUEUE, K.inflight()], args=_args(due)))
        if len(due) < batch:
            return total
