"""The worker's ack rides on settle: a real worker, a real redis-server of its own.

kombu keeps every message a worker took in its ``unacked`` hash (and ``unacked_index``) until
the ack, which costs the worker a MULTI/ZREM/HDEL/EXEC round trip of its own. Our attempt's
last Redis call (``settle``) takes the message out there instead, and the worker's ack stays
local (workers/transport.py). What a user would check: nothing is left behind to be restored
(which would re-deliver), every delivery is recorded as delivered, and the ack round trip is
gone (one MULTI/EXEC per message, kombu's bookkeeping when it takes the message, not two).
A message that never reaches settle (its subscription deleted in the meantime) is acked the
usual way, and nothing of it is left either.
"""
from __future__ import annotations

import signal
from typing import Iterator

import pytest

import webhooks
from tests.support.redis_server import RedisServer
from tests.support.worker import Worker, wait_until
from webhooks import events, records, subscriptions

pytestmark = pytest.mark.integration

N = 150  # large enough that beat's own ticks (a few MULTI/EXEC a second) stay small beside it


@pytest.fixture
def here(own_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process publishes to the module's own redis-server."""
    from webhooks.settings import reload_settings

    for k, v in own_env.items():
        monkeypatch.setenv(k, v)
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


def _exec_calls(own_redis: RedisServer) -> int:
    stats = own_redis.client().info("commandstats")
    return int(stats.get("cmdstat_exec", {}).get("calls", 0))


def test_settle_acks_the_message_and_the_worker_sends_no_ack_of_its_own(
        here, own_redis: RedisServer, own_worker: Worker, receiver, account: str) -> None:
    r = own_redis.client()
    subscriptions.create(account, receiver.url("/acked"), ["message.sent"])
    # the worker's idle polling and beat ticks settle first
    wait_until(lambda: r.llen("deliveries") == 0, 10, message="an empty queue")
    before = _exec_calls(own_redis)
    ids = [d for _ in range(N) for d in webhooks.publish(account, "message.sent", events.sample("message.sent")).delivery_ids]
    receiver.wait_for(lambda rc: len(rc.requests_for("/acked")) == N, timeout_s=60)
    wait_until(lambda: all((records.load(d) or {}).get("status") == "delivered" for d in ids), 20,
               message="every delivery recorded as delivered")
    wait_until(lambda: r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0, 10,
               message="kombu's unacked bookkeeping empty")
    spent = _exec_calls(own_redis) - before
    # one MULTI/EXEC per message (kombu records it as taken); the ack's own would double it
    assert N <= spent < N + N // 2, f"{spent} MULTI/EXEC for {N} messages"


def test_a_message_that_never_reaches_settle_is_acked_as_usual(
        here, own_redis: RedisServer, own_worker: Worker, receiver, account: str) -> None:
    r = own_redis.client()
    sub = subscriptions.create(account, receiver.url("/gone"), ["message.sent"])
    own_worker.signal(signal.SIGSTOP)  # hold the worker while the subscription goes
    try:
        did = webhooks.publish(account, "message.sent", events.sample("message.sent")).delivery_ids[0]
        subscriptions.delete(account, sub.id)
    finally:
        own_worker.signal(signal.SIGCONT)
    wait_until(lambda: (records.load(did) or {}).get("status") == "discarded", 20, message="the delivery discarded")
    wait_until(lambda: r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0, 10,
               message="kombu's unacked bookkeeping empty")
    assert receiver.requests_for("/gone") == []
