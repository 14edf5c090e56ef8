"""Taking and acking ride on our two calls: a real worker, a real redis-server of its own.

kombu records every message a worker takes in its ``unacked`` hash and ``unacked_index``
(a MULTI/ZADD/HSET/EXEC round trip) and removes it at the ack (MULTI/ZREM/HDEL/EXEC): two
round trips of its own per message. Our worker claims the delivery in the call that records
the message and settles it in the call that removes it (workers/transport.py), so a delivery
costs the worker BRPOP + claim + settle. What a user would check: every delivery recorded as
delivered, nothing left behind to be restored (which would re-deliver), and no MULTI/EXEC
per message any more. A message that never reaches settle (its subscription deleted in the
meantime) is acked the usual way, and nothing of it is left either. A prefork worker (whose
children cannot see a claim made in the parent) takes and acks the kombu way.
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


def _calls(server: RedisServer, command: str) -> int:
    stats = server.client().info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def _deliver_many(server: RedisServer, receiver, account: str, path: str) -> tuple[int, int]:
    """Publish N events to one subscription; (MULTI/EXEC, EVALSHA) calls until all delivered."""
    r = server.client()
    subscriptions.create(account, receiver.url(path), ["message.sent"])
    wait_until(lambda: r.llen("deliveries") == 0, 10, message="an empty queue")
    execs, scripts = _calls(server, "exec"), _calls(server, "evalsha")
    ids = [d for _ in range(N) for d in webhooks.publish(account, "message.sent", events.sample("message.sent")).delivery_ids]
    receiver.wait_for(lambda rc: len(rc.requests_for(path)) == N, timeout_s=60)
    wait_until(lambda: all((records.load(d) or {}).get("status") == "delivered" for d in ids), 20,
               message="every delivery recorded as delivered")
    wait_until(lambda: r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0, 10,
               message="kombu's unacked bookkeeping empty")
    return _calls(server, "exec") - execs, _calls(server, "evalsha") - scripts - N  # less publish's own


def test_taking_and_acking_ride_on_claim_and_settle(
        here, own_redis: RedisServer, own_worker: Worker, receiver, account: str) -> None:
    execs, scripts = _deliver_many(own_redis, receiver, account, "/acked")
    # kombu's two MULTI/EXEC per message are gone (beat's own ticks add a few a second)
    assert execs < N // 5, f"{execs} MULTI/EXEC for {N} messages"
    # and each delivery is our two scripts (plus beat's few)
    assert 2 * N <= scripts < 2 * N + N // 5, f"{scripts} EVALSHA for {N} deliveries"


def test_a_prefork_worker_takes_and_acks_the_kombu_way(
        own_env: dict[str, str], receiver, account: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from webhooks.settings import reload_settings

    server = RedisServer(tmp_path / "redis").start()  # the module's threads worker must not take these
    try:
        env = {**own_env, "WEBHOOKS_REDIS_URL": server.url}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        reload_settings()
        with Worker(env, tmp_path / "prefork.log", pool="prefork", concurrency=2, beat=False):
            execs, scripts = _deliver_many(server, receiver, account, "/prefork")
    finally:
        server.stop()
        monkeypatch.undo()
        reload_settings()
    # a child cannot see a claim made in the parent: taken and acked by kombu, claimed in the task
    assert execs >= N and 2 * N <= scripts < 2 * N + N // 5


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
