"""The per-endpoint circuit breaker, on fakeredis with a fake clock."""
from __future__ import annotations

import fakeredis
import pytest

from tests.unit.conftest import FakeClock

from webhooks.breaker import CLOSED, HALF_OPEN, OPEN, BreakerConfig, CircuitBreaker, Transition

EP = "sub_dead"








@pytest.fixture
def breaker(redis: fakeredis.FakeRedis, clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(redis, BreakerConfig(), clock=clock)


def feed(breaker: CircuitBreaker, failures: int, successes: int, endpoint: str = EP) -> list[Transition]:
    """Record successes first, then failures (so the last result decides)."""
    results = [breaker.record(endpoint, True) for _ in range(successes)]
    return results + [breaker.record(endpoint, False) for _ in range(failures)]


def open_breaker(breaker: CircuitBreaker) -> None:
    feed(breaker, failures=10, successes=0)
    assert breaker.state(EP)["state"] == OPEN


def test_a_new_endpoint_is_closed_and_allowed(breaker: CircuitBreaker) -> None:
    assert breaker.allow(EP) == (True, 0.0)
    assert breaker.state(EP) == {"state": CLOSED, "failures": 0, "requests": 0, "opened_at": None, "retry_at": None}


def test_opens_at_seven_failures_of_ten(breaker: CircuitBreaker, clock: FakeClock) -> None:
    # Given 3 successes, When 7 failures follow
    transitions = feed(breaker, failures=7, successes=3)
    # Then the last one opened it, and attempts are held for the cool-down
    assert transitions[-1] == Transition(CLOSED, OPEN)
    assert breaker.allow(EP) == (False, 30.0)
    state = breaker.state(EP)
    assert state["state"] == OPEN and state["opened_at"] == clock.now and state["retry_at"] == clock.now + 30


def test_stays_closed_at_six_failures_of_ten(breaker: CircuitBreaker) -> None:
    transitions = feed(breaker, failures=6, successes=4)
    assert all(not t.changed for t in transitions)
    assert breaker.allow(EP) == (True, 0.0)
    assert breaker.state(EP)["failures"] == 6 and breaker.state(EP)["requests"] == 10


def test_stays_closed_below_min_requests_even_if_all_fail(breaker: CircuitBreaker) -> None:
    feed(breaker, failures=9, successes=0)
    assert breaker.allow(EP) == (True, 0.0)
    # ... and the tenth failure opens it
    assert breaker.record(EP, False).failing


def test_holds_with_the_remaining_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(12.5)
    assert breaker.allow(EP) == (False, pytest.approx(17.5))


def test_after_cooldown_exactly_one_probe_goes(redis: fakeredis.FakeRedis, clock: FakeClock) -> None:
    # Given two workers sharing one Redis, and an open breaker whose cool-down has passed
    worker_a = CircuitBreaker(redis, clock=clock)
    worker_b = CircuitBreaker(redis, clock=clock)
    open_breaker(worker_a)
    clock.advance(30)
    # When both ask
    a, b = worker_a.allow(EP), worker_b.allow(EP)
    # Then one is the probe and the other waits a little
    assert a == (True, 0.0)
    assert b == (False, 5.0)
    assert worker_b.state(EP)["state"] == HALF_OPEN


def test_probe_success_closes_and_resets_counts(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow(EP)[0]
    transition = breaker.record(EP, True)
    assert transition == Transition(HALF_OPEN, CLOSED) and transition.recovered
    assert breaker.allow(EP) == (True, 0.0)
    assert breaker.state(EP)["requests"] == 0
    # counts start afresh: 9 more failures do not re-open it
    feed(breaker, failures=9, successes=0)
    assert breaker.state(EP)["state"] == CLOSED


def test_probe_failure_reopens_for_another_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    opened_at = clock.now
    clock.advance(30)
    assert breaker.allow(EP)[0]
    transition = breaker.record(EP, False)
    assert transition == Transition(HALF_OPEN, OPEN)
    assert not transition.failing  # the episode's "failing" alert was already sent
    assert breaker.allow(EP) == (False, 30.0)
    assert breaker.state(EP)["opened_at"] == opened_at


def test_a_lost_probe_is_replaced_after_its_lease(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow(EP)[0]  # this probe's worker dies and never records
    clock.advance(59)
    assert not breaker.allow(EP)[0]
    clock.advance(1)
    assert breaker.allow(EP) == (True, 0.0)


def test_results_recorded_while_open_are_ignored(breaker: CircuitBreaker) -> None:
    open_breaker(breaker)
    assert breaker.record(EP, True) == Transition(OPEN, OPEN)
    assert breaker.allow(EP)[0] is False


def test_the_window_slides_and_forgets_old_failures(breaker: CircuitBreaker, clock: FakeClock) -> None:
    # Given 6 failures, then (after most of the window) 4 more
    feed(breaker, failures=6, successes=0)
    clock.advance(299)
    feed(breaker, failures=3, successes=0)
    # When the first six have left the 300 s window
    clock.advance(2)
    # Then the next failure makes 4 of 4, not 10 of 10
    assert not breaker.record(EP, False).changed
    assert breaker.state(EP)["failures"] == 4


def test_each_transition_is_reported_once(breaker: CircuitBreaker, clock: FakeClock) -> None:
    transitions = feed(breaker, failures=15, successes=0)
    clock.advance(30)
    breaker.allow(EP)
    transitions += [breaker.record(EP, True), breaker.record(EP, True)]
    assert sum(t.failing for t in transitions) == 1
    assert sum(t.recovered for t in transitions) == 1


def test_endpoints_are_independent(breaker: CircuitBreaker) -> None:
    open_breaker(breaker)
    assert breaker.allow("sub_other") == (True, 0.0)


def test_reset_closes(breaker: CircuitBreaker) -> None:
    open_breaker(breaker)
    breaker.reset(EP)
    assert breaker.allow(EP) == (True, 0.0)
    assert breaker.state(EP)["state"] == CLOSED


def test_works_with_decoded_responses(clock: FakeClock) -> None:
    breaker = CircuitBreaker(fakeredis.FakeRedis(decode_responses=True), clock=clock)
    feed(breaker, failures=10, successes=0)
    assert breaker.state(EP)["state"] == OPEN
    assert breaker.allow(EP) == (False, 30.0)


@pytest.mark.parametrize(
    "kwargs", [{"window_s": 0}, {"min_requests": 0}, {"failure_ratio": 0}, {"failure_ratio": 1.5}, {"cooldown_s": -1}]
)
def test_config_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]
