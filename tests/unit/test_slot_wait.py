"""Deliveries that find every slot of their endpoint taken park and are woken, oldest
first, when a slot is released; they do not poll. (``claim`` parking a delivery and
``settle`` waking it: tests/unit/test_attempt.py.)"""
from __future__ import annotations

import json
import time

import fakeredis

from webhooks import mover
from webhooks.enqueue import RETRIES_QUEUE
from webhooks.keys import K


def _queued_ids(r: fakeredis.FakeRedis) -> list[str]:
    import base64

    return [json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in r.lrange(RETRIES_QUEUE, 0, -1)]


def _wait(r: fakeredis.FakeRedis, did: str, since: float) -> None:
    r.zadd(K.parked(), {did: time.time() + 35})
    r.zadd(K.slot_waiters("sub_x"), {did: since})


def test_a_released_slot_wakes_the_oldest_waiter_only(fake_redis: fakeredis.FakeRedis) -> None:
    # Given two deliveries waiting for a slot of one endpoint
    _wait(fake_redis, "msg_old", 1.0)
    _wait(fake_redis, "msg_new", 2.0)
    # When a slot is released
    woken = mover.wake_one("sub_x")
    # Then the older one is queued now and leaves the parked set; the newer one keeps waiting
    assert woken == "msg_old"
    assert _queued_ids(fake_redis) == ["msg_old"]
    assert fake_redis.zscore(K.parked(), "msg_old") is None
    assert fake_redis.zscore(K.parked(), "msg_new") is not None
    assert fake_redis.zrange(K.slot_waiters("sub_x"), 0, -1) == [b"msg_new"]


def test_a_waiter_already_moved_by_its_fallback_is_skipped(fake_redis: fakeredis.FakeRedis) -> None:
    # Given the oldest waiter was already moved by move_due (no longer parked)
    fake_redis.zadd(K.slot_waiters("sub_x"), {"msg_moved": 1.0})
    _wait(fake_redis, "msg_next", 2.0)
    # When a slot is released, Then the next one is woken and nothing is queued twice
    assert mover.wake_one("sub_x") == "msg_next"
    assert _queued_ids(fake_redis) == ["msg_next"]


def test_nobody_waiting_wakes_nobody(fake_redis: fakeredis.FakeRedis) -> None:
    # Given no waiters, When a slot is released, Then nothing is queued
    assert mover.wake_one("sub_x") is None
    assert fake_redis.llen(RETRIES_QUEUE) == 0
