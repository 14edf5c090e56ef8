"""Per-endpoint concurrency slots and rate limit, on fakeredis with a fake clock."""
from __future__ import annotations

import fakeredis
import pytest

from tests.unit.conftest import FakeClock

from webhooks.limits import EndpointSlots, RateLimiter

EP = "sub_a"








@pytest.fixture
def slots(redis: fakeredis.FakeRedis, clock: FakeClock) -> EndpointSlots:
    return EndpointSlots(redis, clock=clock)


@pytest.fixture
def limiter(redis: fakeredis.FakeRedis, clock: FakeClock) -> RateLimiter:
    return RateLimiter(redis, clock=clock)


# --- slots ----------------------------------------------------------------------------


def test_limit_is_respected(slots: EndpointSlots) -> None:
    taken = [slots.acquire(EP, f"msg_{i}", limit=2, lease_s=45) for i in range(3)]
    assert taken == [True, True, False]
    assert slots.in_flight(EP) == 2


def test_release_frees_a_slot(slots: EndpointSlots) -> None:
    slots.acquire(EP, "msg_1", limit=1, lease_s=45)
    assert not slots.acquire(EP, "msg_2", limit=1, lease_s=45)
    slots.release(EP, "msg_1")
    assert slots.acquire(EP, "msg_2", limit=1, lease_s=45)


def test_a_holder_reacquiring_keeps_its_slot(slots: EndpointSlots, clock: FakeClock) -> None:
    # e.g. a task re-run after its worker was lost
    slots.acquire(EP, "msg_1", limit=1, lease_s=45)
    clock.advance(40)
    assert slots.acquire(EP, "msg_1", limit=1, lease_s=45)  # renewed to 85
    clock.advance(40)
    assert not slots.acquire(EP, "msg_2", limit=1, lease_s=45)
    assert slots.in_flight(EP) == 1


def test_an_expired_lease_is_reclaimed(slots: EndpointSlots, clock: FakeClock) -> None:
    # Given a holder whose worker was killed without releasing
    slots.acquire(EP, "msg_dead", limit=1, lease_s=45)
    clock.advance(44.9)
    assert not slots.acquire(EP, "msg_2", limit=1, lease_s=45)
    # When its lease runs out, Then the slot is free again
    clock.advance(0.1)
    assert slots.in_flight(EP) == 0
    assert slots.acquire(EP, "msg_2", limit=1, lease_s=45)


def test_endpoints_have_their_own_slots(slots: EndpointSlots) -> None:
    assert slots.acquire("sub_a", "msg_1", limit=1, lease_s=45)
    assert slots.acquire("sub_b", "msg_2", limit=1, lease_s=45)
    assert not slots.acquire("sub_a", "msg_3", limit=1, lease_s=45)


def test_slots_refuse_a_zero_limit(slots: EndpointSlots) -> None:
    with pytest.raises(ValueError):
        slots.acquire(EP, "msg_1", limit=0, lease_s=45)


def test_slots_work_with_decoded_responses(clock: FakeClock) -> None:
    slots = EndpointSlots(fakeredis.FakeRedis(decode_responses=True), clock=clock)
    assert slots.acquire(EP, "msg_1", limit=1, lease_s=45)
    assert not slots.acquire(EP, "msg_2", limit=1, lease_s=45)


# --- rate limit -----------------------------------------------------------------------


def test_holders_at_two_per_second_get_successive_times(limiter: RateLimiter) -> None:
    waits = [limiter.reserve(EP, 2, holder=f"msg_{i}") for i in range(4)]
    assert waits == [0.0, 0.5, 1.0, 1.5]


def test_a_holder_coming_back_gets_the_rest_of_its_wait_then_goes(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    limiter.reserve(EP, 2, holder="msg_1")
    assert limiter.reserve(EP, 2, holder="msg_2") == 0.5
    clock.advance(0.2)
    assert limiter.reserve(EP, 2, holder="msg_2") == pytest.approx(0.3)
    clock.advance(0.3)
    assert limiter.reserve(EP, 2, holder="msg_2") == 0.0
    # the booking is used up: another call books a new time
    assert limiter.reserve(EP, 2, holder="msg_2") == 0.5


def test_without_holder_a_wait_books_nothing(limiter: RateLimiter, clock: FakeClock) -> None:
    assert [limiter.reserve(EP, 2) for _ in range(3)] == [0.0, 0.5, 0.5]
    clock.advance(0.5)
    assert limiter.reserve(EP, 2) == 0.0
    assert limiter.reserve(EP, 2) == 0.5


def test_the_rate_recovers_after_idle_time(limiter: RateLimiter, clock: FakeClock) -> None:
    for i in range(3):
        limiter.reserve(EP, 2, holder=f"msg_{i}")
    clock.advance(10)
    assert limiter.reserve(EP, 2, holder="msg_late") == 0.0


def test_burst_lets_that_many_go_at_once(limiter: RateLimiter) -> None:
    waits = [limiter.reserve(EP, 2, burst=3, holder=f"msg_{i}") for i in range(5)]
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0]


def test_a_booking_not_claimed_within_the_grace_is_dropped(redis: fakeredis.FakeRedis, clock: FakeClock) -> None:
    limiter = RateLimiter(redis, clock=clock, booking_grace_s=60)
    limiter.reserve(EP, 1, holder="msg_1")
    assert limiter.reserve(EP, 1, holder="msg_2") == 1.0
    clock.advance(62)
    # msg_2's time (1 s in) is over 60 s gone: it is treated as a new request
    assert limiter.reserve(EP, 1, holder="msg_2") == 0.0
    assert limiter.reserve(EP, 1, holder="msg_3") == 1.0


def test_rate_limits_are_per_endpoint(limiter: RateLimiter) -> None:
    assert limiter.reserve("sub_a", 1) == 0.0
    assert limiter.reserve("sub_b", 1) == 0.0
    assert limiter.reserve("sub_a", 1) == 1.0


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("inf"), 1), (1, 0)])
def test_rate_refuses_nonsense(limiter: RateLimiter, rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        limiter.reserve(EP, rate, burst)
