"""The long-tier mover: due parked retries go back on the queue exactly once."""
from __future__ import annotations

import threading

from webhooks import mover
from webhooks.enqueue import RETRIES_QUEUE
from webhooks.keys import K


def test_only_due_entries_move(fake_redis):
    fake_redis.zadd(K.parked(), {"msg_due": 100.0, "msg_later": 200.0})
    assert mover.move_due(now=150.0) == 1
    assert fake_redis.zrange(K.parked(), 0, -1) == [b"msg_later"]
    assert fake_redis.llen(RETRIES_QUEUE) == 1


def test_two_movers_at_once_move_each_entry_once(fake_redis):
    fake_redis.zadd(K.parked(), {f"msg_{i}": float(i) for i in range(500)})
    totals: list[int] = []
    threads = [threading.Thread(target=lambda: totals.append(mover.move_due(now=1000.0, batch=50))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(totals) == 500
    assert fake_redis.llen(RETRIES_QUEUE) == 500
    assert fake_redis.zcard(K.parked()) == 0
