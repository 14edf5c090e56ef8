"""Moves long-tier retries that are due from the parked sorted set back onto the queue.

Safe to run twice at once: each id is moved only by the caller whose ZREM removed it,
inside the same Lua call that pushes its message, so it is never lost or doubled.
"""
from __future__ import annotations

import time

from .connection import get_redis
from .enqueue import DELIVER_TASK, RETRIES_QUEUE, task_message
from .keys import K

__all__ = ["move_due"]

_MOVE_LUA = """
-- KEYS: parked, queue; ARGV: (delivery id, message)*
local moved = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    redis.call('HSET', 'wh:dlv:' .. ARGV[i], 'status', 'retrying')
    moved = moved + 1
  end
end
return moved
"""


def move_due(now: float | None = None, batch: int = 500) -> int:
    """Move every parked delivery due by ``now``; returns how many this call moved."""
    r = get_redis()
    now = time.time() if now is None else now
    total = 0
    while True:
        due = r.zrangebyscore(K.parked(), "-inf", now, start=0, num=batch)
        if not due:
            return total
        argv: list[str] = []
        for d in due:
            did = d.decode()
            argv += [did, task_message(DELIVER_TASK, [did], RETRIES_QUEUE)]
        total += int(r.eval(_MOVE_LUA, 2, K.parked(), RETRIES_QUEUE, *argv))
        if len(due) < batch:
            return total
