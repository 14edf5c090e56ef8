"""Worker faults: SIGKILL of a whole worker, SIGKILL of a pool child, SIGTERM (soft shutdown).
At-least-once: duplicates are allowed, always with the same webhook-id, and counted."""
from __future__ import annotations

import signal
import time
from typing import Callable

import psutil
import pytest

from tests.faults.support import Stack, Tally, assert_nothing_lost, kill_worker, wait_until

pytestmark = pytest.mark.faults

EVENTS = 1000  # x 2 subscriptions = 2,000 deliveries


def test_a_worker_killed_with_sigkill_mid_batch_loses_nothing(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    # Given a stack with a 20 s visibility timeout, one threads worker (-c 16) and two subscriptions
    stack = make_stack({"WEBHOOKS_VISIBILITY_TIMEOUT_S": "20"})
    stack.subscribe(account)
    first = stack.start_worker()
    # When 1,000 events are published and the worker is SIGKILLed a quarter of the way through
    stack.publish(account, EVENTS)
    wait_until(lambda: stack.endpoint.delivered() >= 500, 90, message="500 deliveries before the kill")
    kill_worker(first, signal.SIGKILL)
    killed_at = time.monotonic()
    in_flight = stack.redis.client().hlen("unacked")
    # ... and a replacement worker starts
    stack.start_worker()
    # Then everything arrives: the killed worker's unacked deliveries come back after the
    # visibility timeout (20 s) plus one sweep of the unacked set (2 s)
    stack.wait_settled(account, 2 * EVENTS, timeout_s=90)
    recovered_s = time.monotonic() - killed_at
    t = report(stack.tally(account))
    assert in_flight > 0, "the kill hit no delivery in flight: the test proved nothing"
    assert_nothing_lost(t)
    assert t.delivered_unique == 2 * EVENTS
    print(f"worker SIGKILL: {in_flight} unacked at the kill, settled {recovered_s:.1f}s after it")


def _pool_children(worker_pid: int) -> list[psutil.Process]:
    return psutil.Process(worker_pid).children()


def test_a_pool_child_killed_mid_delivery_loses_nothing(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    # Given a prefork worker (-c 4) with the production visibility timeout (an hour: a lost
    # message would not come back within this test) and two subscriptions
    stack = make_stack()
    stack.subscribe(account)
    w = stack.start_worker(pool="prefork", concurrency=4, beat=False)
    assert w.proc is not None
    # When 1,000 events are published and the pool children are SIGKILLed twice along the way
    # (all four at once: one of them alone may happen to sit idle between two tasks)
    stack.publish(account, EVENTS)
    for mark in (400, 1000):
        wait_until(lambda: stack.endpoint.delivered() >= mark, 90, message=f"{mark} deliveries")
        lost_before = w.log().count("WorkerLostError")
        for _ in range(5):  # until a kill lands on a child with a task (they can all be idle)
            children = _pool_children(w.proc.pid)
            for child in children:
                child.kill()
            gone = {c.pid for c in children}
            wait_until(lambda: len(_pool_children(w.proc.pid)) == 4
                       and not gone & {c.pid for c in _pool_children(w.proc.pid)}, 30,
                       message="the pool to replace its children")
            if w.log().count("WorkerLostError") > lost_before or stack.endpoint.delivered() >= 2 * EVENTS:
                break
    # Then every delivery arrives (the lost task is re-sent by task_retry_on_worker_lost), none dead
    stack.wait_settled(account, 2 * EVENTS, timeout_s=90)
    t = report(stack.tally(account))
    assert_nothing_lost(t)
    assert t.delivered_unique == 2 * EVENTS
    assert "WorkerLostError" in w.log() or "exited prematurely" in w.log()


def test_sigterm_finishes_or_returns_in_flight_work(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    # Given a threads worker (-c 16) with the production visibility timeout (an hour)
    stack = make_stack()
    stack.subscribe(account)
    first = stack.start_worker()
    assert first.proc is not None
    # When 1,000 events are published and the worker gets SIGTERM mid-run
    stack.publish(account, EVENTS)
    wait_until(lambda: stack.endpoint.delivered() >= 500, 90, message="500 deliveries before SIGTERM")
    first.signal(signal.SIGTERM)
    # Then it exits by itself within the soft shutdown timeout, holding nothing unacked
    wait_until(lambda: first.proc.poll() is not None, 40, 0.1, message="the worker to exit after SIGTERM")
    assert first.proc.returncode == 0, first.log()[-3000:]
    assert stack.redis.client().hlen("unacked") == 0
    # ... and a new worker delivers the rest, long before any visibility timeout could matter
    stack.start_worker()
    stack.wait_settled(account, 2 * EVENTS, timeout_s=60)
    t = report(stack.tally(account))
    assert_nothing_lost(t)
    assert t.delivered_unique == 2 * EVENTS
