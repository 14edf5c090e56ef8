"""Every Lua script of the state machine, run on a real Redis (fakeredis's Lua is not
Redis's: its cjson, number formatting and error replies differ).

The verdict matrix of tests/unit/test_attempt.py runs here again, unchanged, on the real
server; then one story walks every script (publish, claim, settle, move_due, wake, resend,
dead_letter, replay, purge and the standalone slot, rate and breaker scripts) and checks that
each of them ran.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Iterator

import pytest

import webhooks
from tests.unit.conftest import FakeClock
from tests.unit.test_attempt import World, _http
from tests.unit.test_attempt import test_410_dead_letters_and_disables_the_subscription as test_real_410  # noqa: F401
from tests.unit.test_attempt import test_a_2xx_is_delivered_at_any_step_and_releases_the_payload as test_real_2xx  # noqa: F401
from tests.unit.test_attempt import test_a_deleted_subscription_discards_without_a_request as test_real_deleted  # noqa: F401
from tests.unit.test_attempt import test_a_failed_attempt_retries_parks_or_dies_by_its_place_in_the_schedule as test_real_failures  # noqa: F401
from tests.unit.test_attempt import test_a_half_open_breaker_sends_one_probe_and_its_success_closes_it as test_real_probe  # noqa: F401
from tests.unit.test_attempt import test_a_taken_slot_parks_the_delivery_until_a_release_wakes_it as test_real_slots  # noqa: F401
from tests.unit.test_attempt import test_an_expired_payload_discards as test_real_expired  # noqa: F401
from tests.unit.test_attempt import test_an_open_breaker_makes_the_delivery_wait_without_a_request as test_real_open  # noqa: F401
from webhooks import deadletters, events, mover, records, subscriptions
from webhooks.breaker import CircuitBreaker
from webhooks.connection import get_redis
from webhooks.keys import K
from webhooks.limits import EndpointSlots, RateLimiter
from webhooks.state import Attempt, scripts

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


@pytest.fixture
def world(configured, clock, monkeypatch) -> Iterator[World]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WEBHOOKS_ENDPOINT_CONCURRENCY", "4")
    from webhooks.settings import reload_settings

    reload_settings()
    yield World(get_redis(), clock, account=f"lua-{uuid.uuid4().hex[:10]}")


def test_every_script_runs_on_a_real_redis(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ran: set[str] = set()
    real_call = scripts.Script.__call__

    def spy(self: scripts.Script, client: Any, keys: Any, args: Any) -> Any:
        ran.add(self.name)
        return real_call(self, client, keys, args)

    monkeypatch.setattr(scripts.Script, "__call__", spy)
    acct, r, store = world.account, world.r, world.store
    ids = [webhooks.publish(acct, "message.sent", events.sample("message.sent")).delivery_ids[0] for _ in range(4)]
    a, b, c, d = ids
    # a: 500 at the step whose next wait is an hour -> parked; beat's mover brings it back
    r.hset(K.delivery(a), "retries", 2)
    world.transport.script(_http(500))
    assert world.attempt(a).action == "park"
    assert mover.move_due(now=time.time() + 3 * 3600) >= 1
    assert records.load(a)["status"] == "retrying"
    # b: 500 at the last step -> dead letter; replayed; delivered with the same webhook-id
    r.hset(K.delivery(b), "retries", 3)
    world.transport.script(_http(500))
    assert world.attempt(b).action == "dead"
    assert deadletters.replay(acct, [b])["replayed"] == [b]
    world.transport.script(_http(200))
    assert world.attempt(b).action == "delivered"
    assert [req.headers["webhook-id"] for req in world.transport.requests[-2:]] == [b, b]
    # c: its task failed outside an attempt -> the fallback dead letter; then purged
    assert deadletters.record(c, "WorkerLostError")
    assert deadletters.purge(acct, [c]) == 1
    assert records.load(c)["status"] == "discarded"
    # d: waits for a slot of a busy endpoint and is woken by the mover
    for i in range(world.settings.endpoint_concurrency):
        assert EndpointSlots(r).acquire(world.sub.id, f"msg_h{i}", world.settings.endpoint_concurrency, 60)
    assert world.attempt(d).action == "park"
    EndpointSlots(r).release(world.sub.id, "msg_h0")
    assert mover.wake_one(world.sub.id) == d
    # the reconciler's re-send of an overdue delivery whose message is nowhere
    r.zadd(K.inflight(), {d: time.time() - 1})
    assert store.resend(d, "retries", time.time(), time.time() + 60)
    # the standalone scripts
    assert RateLimiter(r).reserve(f"ep-{acct}", 1.0, holder="x") == 0
    breaker = CircuitBreaker(r)
    assert breaker.allow(f"ep-{acct}") == (True, 0.0)
    assert breaker.record(f"ep-{acct}", True).new == "closed"
    assert ran == set(scripts.NAMES)


def test_settle_keeps_floats_and_json_as_python_reads_them(world: World) -> None:
    # cjson on a real Redis writes the dead letter: numbers must come back as Python wrote them
    world.r.hset(K.delivery(world.did), "retries", 3)
    world.transport.script(_http(503))
    world.attempt()
    letter = deadletters.get(world.account, world.did)
    rec = records.load(world.did)
    assert letter["created"] == pytest.approx(float(rec["created"]), abs=0.01)
    assert letter["status"] == 503 and letter["attempts"] == 1 and letter["error"] == "endpoint answered 503"
    assert subscriptions.get(world.account, world.sub.id).enabled


def test_a_second_settle_of_a_delivered_delivery_counts_a_duplicate(world: World) -> None:
    # at-least-once: two workers attempted the same delivery at once; both got 200
    claim = world.store.claim(world.did)
    assert claim.action == "go"
    done = Attempt(world.did, world.sub.id, 1, time.time(), 1.0, 200, None, "delivered")
    first = world.store.settle(claim, done, action="delivered", ok=True, counts=True, error_kind=None, error=None)
    second = world.store.settle(claim, done, action="delivered", ok=True, counts=True, error_kind=None, error=None)
    assert (first.result, second.result) == ("delivered", "duplicate")
    assert records.load(world.did)["duplicates"] == "1"


def test_settle_takes_the_broker_message_out_of_kombus_bookkeeping_only_when_it_is_there(world: World) -> None:
    from webhooks.state import BrokerMessage

    index, messages = f"{world.account}:unacked_index", f"{world.account}:unacked"
    world.r.zadd(index, {"tag-1": time.time()})
    world.r.hset(messages, "tag-1", "[message]")
    claim = world.store.claim(world.did)
    here = BrokerMessage("tag-1", index, messages)
    done = Attempt(world.did, world.sub.id, 1, time.time(), 1.0, 200, None, "delivered")
    world.store.settle(claim, done, action="delivered", ok=True, counts=True, error_kind=None, error=None, broker=here)
    # Then it is gone from both, and the worker may ack locally
    assert here.done and not world.r.exists(index) and not world.r.exists(messages)
    # A tag that is not there (a broker elsewhere, a message already restored): the worker acks as usual
    other = webhooks.publish(world.account, "message.sent", events.sample("message.sent")).delivery_ids[0]
    claim = world.store.claim(other)
    elsewhere = BrokerMessage("tag-2", index, messages)
    done = Attempt(other, world.sub.id, 1, time.time(), 1.0, 200, None, "delivered")
    world.store.settle(claim, done, action="delivered", ok=True, counts=True, error_kind=None, error=None,
                       broker=elsewhere)
    assert not elsewhere.done and records.load(other)["status"] == "delivered"
