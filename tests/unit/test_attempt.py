"""The attempt as a pure function of its inputs: ``attempt(delivery_id, store=, transport=,
clock=)``, unit-tested over the verdict matrix with FakeTransport, a fake clock and a Redis
(fakeredis here; tests/integration/test_state_lua.py runs the same matrix on a real Redis).

Every case checks what an operator would: the outcome, the record's status and schedule
position, the attempt log, the dead letter, the parked set, the slot given back, the payload
released, and that the attempt cost at most two Redis calls of ours.
"""
from __future__ import annotations

import email.utils
import json
import time
from typing import Any, Callable

import pytest

import webhooks
from webhooks import deadletters, delivery, events, records, subscriptions
from webhooks.breaker import CircuitBreaker
from webhooks.errors import PermanentDeliveryError, TransientDeliveryError, ValidationError
from webhooks.keys import K
from webhooks.limits import EndpointSlots
from webhooks.settings import get_settings
from webhooks.state import DeliveryStore
from webhooks.transport import FakeTransport

SCHEDULE = "1s, 2m, 1h"  # first step a countdown, second a countdown, third parked (> 600 s)
URL = "https://127.0.0.1/hook"


class Calls:
    """Counts the Redis script calls (EVALSHA) the code under test makes; a first call that
    Redis answers with NOSCRIPT (and that is sent again after SCRIPT LOAD) counts once."""

    def __init__(self, client: Any) -> None:
        self.n = 0
        real = client.evalsha

        def counted(*a: Any, **k: Any) -> Any:
            out = real(*a, **k)
            self.n += 1
            return out

        client.evalsha = counted


class World:
    """An account with one subscription, one published event, a store on ``client``."""

    def __init__(self, client: Any, clock: Callable[[], float], account: str = "acme", **sub_options: Any) -> None:
        self.account = account
        self.r = client
        self.clock = clock
        self.settings = get_settings()
        self.store = DeliveryStore(client, self.settings, clock)
        self.transport = FakeTransport()
        self.sub = subscriptions.create(self.account, URL, ["message.sent"], retry_schedule=SCHEDULE, **sub_options)
        self.published = webhooks.publish(self.account, "message.sent", events.sample("message.sent"))
        self.did = self.published.delivery_ids[0]
        self.calls = Calls(client)

    def attempt(self, did: str | None = None) -> delivery.Outcome:
        return delivery.attempt(did or self.did, store=self.store, transport=self.transport, clock=self.clock)

    def record(self, did: str | None = None) -> dict[str, str]:
        return records.load(did or self.did) or {}

    def at_step(self, retries: int) -> None:
        self.r.hset(K.delivery(self.did), "retries", retries)

    def payload_exists(self) -> bool:
        return bool(self.r.exists(K.event(self.account, self.published.id)))


@pytest.fixture
def world(fake_redis, clock) -> World:  # type: ignore[no-untyped-def]
    clock.now = time.time()
    return World(fake_redis, clock)


def _http(status: int, headers: dict[str, str] | None = None) -> Any:
    return FakeTransport.response(status, headers=headers)


def _date_in(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


RETRYABLE = {
    "3xx": (_http(302), "http_302"),
    "4xx": (_http(400), "http_400"),
    "5xx": (_http(500), "http_500"),
    "503 (throttling)": (_http(503), "http_503"),
    "429 Retry-After seconds": (_http(429, {"Retry-After": "3"}), "http_429"),
    "429 Retry-After date": (None, "http_429"),  # the date is made when the test runs
    "timeout": (TransientDeliveryError("slow", kind="timeout"), "timeout"),
    "connect": (TransientDeliveryError("refused", kind="connect"), "connect"),
    "tls": (TransientDeliveryError("bad cert", kind="tls"), "tls"),
}


# -- the response matrix x the schedule position --------------------------------------------


@pytest.mark.parametrize("answer", list(RETRYABLE), ids=list(RETRYABLE))
@pytest.mark.parametrize("step", ["first", "middle", "last"])
def test_a_failed_attempt_retries_parks_or_dies_by_its_place_in_the_schedule(world: World, answer: str, step: str) -> None:
    # Given a delivery at the first, middle (next wait is 1 h: parked) or last step of "1s, 2m, 1h"
    world.at_step({"first": 0, "middle": 2, "last": 3}[step])
    item, kind = RETRYABLE[answer]
    world.transport.script(item or _http(429, {"Retry-After": _date_in(3)}))
    # When the endpoint answers with a retryable failure
    out = world.attempt()
    rec = world.record()
    # Then the attempt is logged with its class, in two Redis calls, and the slot is back
    assert world.calls.n == 2
    assert [a["error"] for a in records.attempts(world.did)] == [kind]
    assert rec["attempts"] == "1" and rec["last_error"]
    assert world.r.zcard(K.slots(world.sub.id)) == 0
    if step == "first":
        assert out.action == "retry" and rec["status"] == "retrying" and rec["retries"] == "1"
        # a 1 s step: 1-1.2 s; throttled without Retry-After: the 5 s floor; with "3 s": 3 s
        low, high = {"503 (throttling)": (5, 6), "429 Retry-After seconds": (3, 3.6),
                     "429 Retry-After date": (1, 3.6)}.get(answer, (1, 1.2))
        assert low <= out.delay_s <= high
        assert world.r.zscore(K.parked(), world.did) is None
    elif step == "middle":
        assert out.action == "park" and rec["status"] == "parked" and rec["retries"] == "3"
        high = 7200 * 1.2 if answer == "503 (throttling)" else 3600 * 1.2  # throttled: up to 2 steps
        assert 3600 <= world.r.zscore(K.parked(), world.did) - world.clock() <= high
    else:
        assert out.action == "dead" and rec["status"] == "dead" and rec["reason"] == "exhausted"
        letter = deadletters.get(world.account, world.did)
        assert letter["reason"] == "exhausted" and letter["attempts"] == 1 and letter["event_id"] == world.published.id
        assert world.r.zscore(K.inflight(), world.did) is None
        assert world.payload_exists(), "a dead letter keeps its payload for replay"


@pytest.mark.parametrize("step", ["first", "middle", "last"])
def test_a_2xx_is_delivered_at_any_step_and_releases_the_payload(world: World, step: str) -> None:
    world.at_step({"first": 0, "middle": 2, "last": 3}[step])
    world.transport.script(_http(204))
    out = world.attempt()
    rec = world.record()
    assert out.action == "delivered" and world.calls.n == 2
    assert rec["status"] == "delivered" and rec["last_status"] == "204" and rec["delivered_at"]
    assert not world.payload_exists(), "the last delivery of an event drops its payload"
    assert world.r.zscore(K.inflight(), world.did) is None
    assert world.r.zcard(K.slots(world.sub.id)) == 0
    # and the request was signed for this delivery's webhook-id
    sent = world.transport.requests[0]
    assert sent.headers["webhook-id"] == world.did
    assert webhooks.verify(world.sub.signing_secrets(), sent.body, dict(sent.headers))


def test_410_dead_letters_and_disables_the_subscription(world: World) -> None:
    world.transport.script(_http(410))
    out = world.attempt()
    assert out.action == "dead" and world.record()["reason"] == "gone"
    assert deadletters.get(world.account, world.did)["status"] == 410
    assert subscriptions.get(world.account, world.sub.id).enabled is False


@pytest.mark.parametrize("failure,reason", [
    (PermanentDeliveryError("private address", kind="url_refused"), "url_refused"),
    ("transform", "transform"),
], ids=["refused URL", "transform error"])
def test_a_permanent_failure_dead_letters_at_once_without_touching_the_breaker(world: World, monkeypatch, failure, reason) -> None:  # type: ignore[no-untyped-def]
    if failure == "transform":
        def broken(sub: Any, raw: bytes) -> Any:
            raise ValidationError("mapping failed", {"mapping.x": ["no such field"]})

        monkeypatch.setattr(delivery, "_build", broken)
    else:
        world.transport.script(failure)
    out = world.attempt()
    assert out.action == "dead" and world.calls.n == 2
    assert deadletters.get(world.account, world.did)["reason"] == reason
    assert CircuitBreaker(world.r).state(world.sub.id)["requests"] == 0, "not the endpoint's fault"


# -- the gate before the request: subscription, payload, rate, slot, breaker -----------------


def test_a_deleted_subscription_discards_without_a_request(world: World) -> None:
    subscriptions.delete(world.account, world.sub.id)
    out = world.attempt()
    assert out.action == "discarded" and out.reason == "subscription deleted"
    assert world.record()["status"] == "discarded" and world.transport.requests == []
    assert world.calls.n == 1 and not world.payload_exists()


def test_a_disabled_subscription_discards_with_its_reason(world: World) -> None:
    subscriptions.disable(world.account, world.sub.id, reason="maintenance")
    out = world.attempt()
    assert out.action == "discarded" and out.reason == "subscription disabled: maintenance"
    assert world.transport.requests == []


def test_an_expired_payload_discards(world: World) -> None:
    world.r.delete(K.event(world.account, world.published.id))
    out = world.attempt()
    assert out.action == "discarded" and out.reason == "event payload expired"
    assert world.transport.requests == []


def test_an_ended_or_unknown_delivery_is_skipped(world: World) -> None:
    world.transport.script(_http(200))
    world.attempt()
    assert world.attempt().action == "skip"  # a re-delivered message: no second request
    assert world.attempt("msg_nosuch").action == "skip"
    assert len(world.transport.requests) == 1


def test_a_taken_slot_parks_the_delivery_until_a_release_wakes_it(world: World) -> None:
    # Given every slot of the endpoint is held (by another delivery of the same endpoint)
    limit = world.settings.endpoint_concurrency
    other = webhooks.publish(world.account, "message.sent", events.sample("message.sent")).delivery_ids[0]
    for i in range(limit - 1):
        assert EndpointSlots(world.r).acquire(world.sub.id, f"msg_holder{i}", limit, 60)
    world.transport.script(_http(200))
    # When two deliveries come: the first takes the last slot... (its settle is held back)
    claim = world.store.claim(other)
    assert claim.action == "go" and (claim.account, claim.subscription_id) == (world.account, world.sub.id)
    # ...and the second finds none
    out = world.attempt()
    # Then the second waits in the parked set, due at the lease's end at the latest, no request
    assert out.action == "park" and out.reason == "endpoint busy" and world.transport.requests == []
    assert world.record()["status"] == "waiting"
    due = world.r.zscore(K.parked(), world.did) - world.clock()
    assert 0 < due <= world.store.slot_lease_s
    # When the first attempt settles, Then its release wakes the waiter onto the retries queue
    from webhooks.state import Attempt

    settled = world.store.settle(claim, Attempt(other, world.sub.id, 1, world.clock(), 1.0, 200, None, "delivered"),
                                 action="delivered", ok=True, counts=True, error_kind=None, error=None)
    assert settled.woken == world.did
    assert world.record()["status"] == "retrying" and world.r.zscore(K.parked(), world.did) is None
    queued = [json.loads(json.loads(m)["body"])[0][0] for m in world.r.lrange("retries", 0, -1)]
    assert queued == [world.did]
    assert world.attempt().action == "delivered"


def _open_breaker(world: World) -> CircuitBreaker:
    b = CircuitBreaker(world.r, delivery.breaker_config(world.settings), clock=world.clock)
    for _ in range(world.settings.breaker_min_requests):
        b.record(world.sub.id, False)
    assert b.state(world.sub.id)["state"] == "open"
    return b


def test_an_open_breaker_makes_the_delivery_wait_without_a_request(world: World) -> None:
    _open_breaker(world)
    world.calls.n = 0
    out = world.attempt()
    assert out.action == "wait" and out.reason == "circuit open" and world.transport.requests == []
    assert 1 <= out.delay_s <= world.settings.breaker_cooldown_s
    assert world.record()["status"] == "waiting" and world.calls.n == 1
    assert world.r.zcard(K.slots(world.sub.id)) == 0, "a refused delivery holds no slot"


def test_a_half_open_breaker_sends_one_probe_and_its_success_closes_it(world: World, clock) -> None:  # type: ignore[no-untyped-def]
    b = _open_breaker(world)
    clock.advance(world.settings.breaker_cooldown_s + 1)
    second = webhooks.publish(world.account, "message.sent", events.sample("message.sent")).delivery_ids[0]
    # Given the first delivery after the cool-down becomes the probe (claimed, not yet settled)
    probe = world.store.claim(second)
    assert probe.action == "go"
    assert b.state(world.sub.id)["state"] == "half_open"
    # When another comes while the probe is out, Then it waits (probe wait at most)
    out = world.attempt()
    assert out.action == "wait" and out.delay_s <= 5.0
    # When the probe succeeds, Then the breaker closes (a transition settle reports) and
    # deliveries flow again
    from webhooks.state import Attempt

    settled = world.store.settle(probe, Attempt(second, world.sub.id, 1, world.clock(), 1.0, 200, None, "delivered"),
                                 action="delivered", ok=True, counts=True, error_kind=None, error=None)
    assert (settled.breaker_before, settled.breaker_after) == ("half_open", "closed")
    assert b.state(world.sub.id)["state"] == "closed"
    world.transport.script(_http(200))
    assert world.attempt().action == "delivered"


def test_a_failed_probe_reopens_the_breaker(world: World, clock) -> None:  # type: ignore[no-untyped-def]
    b = _open_breaker(world)
    clock.advance(world.settings.breaker_cooldown_s + 1)
    world.transport.script(_http(500))
    assert world.attempt().action == "retry"
    assert b.state(world.sub.id)["state"] == "open"


def test_a_rate_limited_endpoint_books_the_next_slot_in_time(fake_redis, clock) -> None:  # type: ignore[no-untyped-def]
    clock.now = time.time()
    w = World(fake_redis, clock, rate_limit_per_s=1.0)
    second = webhooks.publish(w.account, "message.sent", events.sample("message.sent")).delivery_ids[0]
    assert w.attempt().action == "delivered"
    out = delivery.attempt(second, store=w.store, transport=w.transport, clock=w.clock)
    assert out.action == "wait" and out.reason == "rate limited" and 0 < out.delay_s <= 1.0
    clock.advance(out.delay_s)
    assert delivery.attempt(second, store=w.store, transport=w.transport, clock=w.clock).action == "delivered"


def test_the_breaker_opening_alerts_once_after_the_slot_is_released(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given an endpoint one failure away from opening its breaker
    b = CircuitBreaker(world.r, delivery.breaker_config(world.settings), clock=world.clock)
    for _ in range(world.settings.breaker_min_requests - 1):
        b.record(world.sub.id, False)
    alerts: list[tuple[str, int]] = []
    monkeypatch.setattr(delivery.health, "alert", lambda kind, sub, details, s: alerts.append(
        (kind, world.r.zcard(K.slots(sub.id)))))
    # When the next attempt fails
    world.transport.script(_http(500))
    world.attempt()
    # Then one endpoint.failing alert is sent, while no slot of the endpoint is held
    assert alerts == [("endpoint.failing", 0)]


def test_an_endpoint_failing_past_the_disable_time_is_disabled(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    world.r.set(K.stats(world.sub.id, "failing_since"), repr(world.clock() - world.settings.disable_after_s - 1))
    world.transport.script(_http(500))
    world.attempt()
    sub = subscriptions.get(world.account, world.sub.id)
    assert sub.enabled is False and "failing continuously" in (sub.disabled_reason or "")


def test_the_subscription_is_decoded_once_per_version(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    decoded: list[int] = []
    real = subscriptions.Subscription.from_json

    def spy(raw: Any) -> Any:
        decoded.append(1)
        return real(raw)

    ids = [webhooks.publish(world.account, "message.sent", events.sample("message.sent")).delivery_ids[0] for _ in range(3)]
    monkeypatch.setattr(subscriptions.Subscription, "from_json", spy)
    delivery._endpoints.clear()
    for did in ids:
        world.attempt(did)
    assert len(decoded) == 1
    monkeypatch.setattr(subscriptions.Subscription, "from_json", real)
    subscriptions.update(world.account, world.sub.id, description="new version")
    monkeypatch.setattr(subscriptions.Subscription, "from_json", spy)
    world.attempt()
    assert len(decoded) == 2


def test_a_killed_pool_child_is_still_dead_lettered(world: World) -> None:
    # Given a delivery whose task failed outside the attempt (the pool child died)
    from billiard.exceptions import WorkerLostError

    from workers import tasks

    # When Celery's task_failure signal fires for it
    tasks._on_task_failure(sender=tasks.deliver, task_id="t1", exception=WorkerLostError("killed"), args=[world.did])
    # Then its dead letter is written once, from the record
    letter = deadletters.get(world.account, world.did)
    assert letter["subscription_id"] == world.sub.id and letter["reason"] == "WorkerLostError"
    assert not deadletters.record(world.did, "again")


def test_claim_reads_enabled_and_rate_from_the_top_level_of_the_subscription_only(fake_redis, clock) -> None:  # type: ignore[no-untyped-def]
    # Given a subscription whose text and mapping mention "enabled":false and rate_limit_per_s
    clock.now = time.time()
    w = World(fake_redis, clock, description='"enabled":false', transform={
        "mapping": {"rate_limit_per_s": "data.text", "enabled": "`false`"}})
    w.transport.script(_http(200), _http(200))
    second = webhooks.publish(w.account, "message.sent", events.sample("message.sent")).delivery_ids[0]
    # When two deliveries go at once, Then neither is discarded nor rate limited
    assert w.attempt().action == "delivered"
    assert delivery.attempt(second, store=w.store, transport=w.transport, clock=w.clock).action == "delivered"
