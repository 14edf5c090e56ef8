"""The reconciler re-sends a delivery whose message was lost, and nothing else."""
from __future__ import annotations

import json
import time

import webhooks
from webhooks import events, reconcile, subscriptions
from webhooks.enqueue import DELIVERIES_QUEUE, RETRIES_QUEUE
from webhooks.keys import K


def _publish(fake_redis, n: int = 3) -> list[str]:  # type: ignore[no-untyped-def]
    subscriptions.create("acme", "https://127.0.0.1/a", ["message.sent"])
    return [webhooks.publish("acme", "message.sent", events.sample("message.sent")).delivery_ids[0] for _ in range(n)]


def test_nothing_is_resent_before_its_deadline(fake_redis):
    _publish(fake_redis)
    assert reconcile.reconcile()["overdue"] == 0
    assert fake_redis.llen(RETRIES_QUEUE) == 0


def test_a_queued_or_unacked_message_is_left_alone_after_the_deadline(fake_redis):
    # Given three overdue deliveries: one still queued, one held unacked by a worker, one parked
    ids = _publish(fake_redis)
    queued = fake_redis.lrange(DELIVERIES_QUEUE, 0, -1)
    fake_redis.delete(DELIVERIES_QUEUE)
    fake_redis.lpush(DELIVERIES_QUEUE, queued[0])
    fake_redis.hset("unacked", "tag-1", json.dumps([json.loads(queued[1]), "", DELIVERIES_QUEUE]))
    held = {i for i in ids if any(i in json.loads(m)["headers"]["argsrepr"] for m in queued[:2])}
    [parked] = set(ids) - held
    fake_redis.zadd(K.parked(), {parked: time.time() + 3600})
    later = time.time() + 10 * 3600
    # When the reconciler runs past every deadline
    counts = reconcile.reconcile(now=later)
    # Then none is re-sent
    assert counts == {"overdue": 3, "resent": 0, "in_transit": 3, "ended": 0, "skipped": 0}
    assert fake_redis.llen(RETRIES_QUEUE) == 0


def test_a_lost_message_is_resent_once_with_the_same_delivery_id(fake_redis):
    # Given a delivery whose message vanished (taken by BRPOP, never recorded as unacked)
    [did] = _publish(fake_redis, 1)
    fake_redis.delete(DELIVERIES_QUEUE)
    later = time.time() + 10 * 3600
    # When two reconcilers run at the same moment
    first, second = reconcile.reconcile(now=later), reconcile.reconcile(now=later)
    # Then it is re-sent exactly once, same id, and its deadline moves on
    assert first["resent"] == 1 and second["overdue"] == 0
    [msg] = fake_redis.lrange(RETRIES_QUEUE, 0, -1)
    assert did in json.loads(msg)["headers"]["argsrepr"]
    assert fake_redis.hget(K.delivery(did), "reconciled") == b"1"
    assert fake_redis.zscore(K.inflight(), did) > later


def test_ended_deliveries_leave_the_in_flight_set(fake_redis):
    [did] = _publish(fake_redis, 1)
    fake_redis.hset(K.delivery(did), "status", "delivered")
    counts = reconcile.reconcile(now=time.time() + 10 * 3600)
    assert counts["ended"] == 1
    assert fake_redis.zscore(K.inflight(), did) is None


def test_the_queues_are_read_at_most_once_per_interval(fake_redis):
    # Given two deliveries whose messages are lost, one overdue now and one a little later
    first, second = _publish(fake_redis, 2)
    fake_redis.delete(DELIVERIES_QUEUE)
    later = time.time() + 10 * 3600
    fake_redis.zadd(K.inflight(), {second: later + 1})
    # When the reconciler runs, and again before its interval has passed
    assert reconcile.reconcile(now=later)["resent"] == 1
    again = reconcile.reconcile(now=later + 2)
    # Then the second run does not read the queues; the delivery waits for the next look
    assert again["skipped"] == 1 and again["resent"] == 0
    fake_redis.delete(reconcile.SCAN_LOCK_KEY)
    assert reconcile.reconcile(now=later + 2)["resent"] == 1
