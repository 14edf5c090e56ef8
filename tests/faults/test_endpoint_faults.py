"""Endpoint faults: down for a while then back (retries get everything there), hanging
(the total deadline frees the workers), and failing past the schedule (dead letters that one
replay delivers). Deliveries keep their webhook-id through retries and replays."""
from __future__ import annotations

from typing import Callable

import pytest

from tests.faults.support import Stack, Tally, after, assert_nothing_lost, wait_until
from tests.support.receiver import Reply

pytestmark = pytest.mark.faults

EVENTS = 1000  # x 2 subscriptions = 2,000 deliveries
# Retries over ~15 s (+20 % jitter): longer than the outages below.
OUTLASTING = "0.5,1,2,4,8"


def test_an_endpoint_down_for_a_while_then_back_gets_everything(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    # Given two subscriptions whose retries span ~15 s, and one worker (breaker cool-down 2 s)
    stack = make_stack()
    stack.subscribe(account, retry_schedule=OUTLASTING)
    stack.start_worker()
    # When the endpoint stops listening for 8 s (connection refused) in the middle of 1,000 events
    stack.publish(account, EVENTS)
    wait_until(lambda: stack.endpoint.delivered() >= 400, 60, message="400 deliveries before the outage")
    stack.endpoint.down()
    back = after(8.0, stack.endpoint.up)
    # Then once it is back every delivery arrives, none dead-lettered
    stack.wait_settled(account, 2 * EVENTS, timeout_s=90)
    back.join()
    t = report(stack.tally(account))
    assert_nothing_lost(t, dead=0)
    assert t.delivered_unique == 2 * EVENTS


def test_a_hanging_endpoint_costs_time_not_deliveries(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    # Given two subscriptions whose retries span ~15 s; attempts time out after 5 s in total
    stack = make_stack()
    stack.subscribe(account, retry_schedule=OUTLASTING)
    w = stack.start_worker()
    # When the endpoint reads requests and answers nothing for 6 s mid-run
    stack.publish(account, EVENTS)
    wait_until(lambda: stack.endpoint.delivered() >= 400, 60, message="400 deliveries before the hang")
    stack.endpoint.set_mode(Reply.hang(max_s=6.0))
    after(6.0, lambda: stack.endpoint.set_mode(Reply(status=200)))
    # Then the hung attempts time out and are retried: everything arrives, none dead
    stack.wait_settled(account, 2 * EVENTS, timeout_s=90)
    t = report(stack.tally(account))
    assert_nothing_lost(t, dead=0)
    assert t.delivered_unique == 2 * EVENTS
    assert "timeout" in w.log().lower()


def test_an_endpoint_failing_past_the_schedule_leaves_dead_letters_that_one_replay_delivers(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    from webhooks import deadletters

    # Given a short schedule (3 attempts in ~1 s) and the breaker out of the way (it would hold
    # the deliveries back instead of letting them spend the schedule)
    stack = make_stack({"WEBHOOKS_BREAKER_MIN_REQUESTS": "1000000"})
    stack.subscribe(account, retry_schedule="0.2,0.5")
    stack.start_worker()
    # When the endpoint answers 500 to everything from a fifth of the way through 1,000 events
    stack.publish(account, EVENTS)
    wait_until(lambda: stack.endpoint.delivered() >= 400, 60, message="400 deliveries before the 500s")
    stack.endpoint.set_mode(Reply(status=500, body=b"down"))
    # Then every delivery not yet through ends as a dead letter, none pending
    stack.wait_settled(account, 2 * EVENTS, timeout_s=90)
    first = stack.tally(account)
    assert first.dead > 0 and first.lost == 0
    assert first.delivered_unique + first.dead >= 2 * EVENTS
    # When the endpoint is fixed and the operator replays every dead letter once
    stack.endpoint.set_mode(Reply(status=200))
    replayed = deadletters.replay(account, all_=True)
    assert len(replayed["replayed"]) == first.dead and not replayed["skipped"]
    # Then everything has arrived, with no dead letter left
    stack.wait_settled(account, 2 * EVENTS, timeout_s=90)
    t = report(stack.tally(account))
    assert_nothing_lost(t, dead=0)
    assert t.delivered_unique == 2 * EVENTS
    print(f"500 past the schedule: {first.dead} dead letters, all delivered by one replay")
