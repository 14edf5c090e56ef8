"""Redis faults: SIGKILL and restart mid-run (AOF keeps every acknowledged publish; worker and
producer reconnect by themselves), and Redis down while publishing, with and without the outbox."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.faults.support import (Stack, Tally, after, assert_nothing_lost, paced,
                                  wait_until)

pytestmark = pytest.mark.faults


def test_redis_killed_and_restarted_mid_run_loses_no_acknowledged_publish(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    # Given a stack (20 s visibility timeout) with one worker and two subscriptions, and a
    # producer publishing 250 events a second until 1,000 have been acknowledged
    stack = make_stack({"WEBHOOKS_VISIBILITY_TIMEOUT_S": "20"})
    stack.subscribe(account)
    w = stack.start_worker()
    done = threading.Event()

    def produce() -> None:
        for i in paced(5000, 250.0, done):
            stack.log.publish(account, f"evt_r{i}")
            if len(stack.log.acknowledged) >= 1000:
                return

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        # When Redis is SIGKILLed mid-run and started again 2 s later on the same AOF
        wait_until(lambda: len(stack.log.acknowledged) >= 400, 60, message="400 acknowledged publishes")
        stack.redis.kill()
        restarted = threading.Event()
        after(2.0, lambda: (stack.redis.restart(), restarted.set()))
        wait_until(restarted.is_set, 60, 0.1, message="redis to restart")
        delivered_at_restart = stack.endpoint.delivered()
        producer.join(120)
        assert not producer.is_alive(), "the producer never got 1,000 publishes acknowledged"
    finally:
        done.set()
    # Then the same worker process, never restarted, delivers every acknowledged publish
    stack.wait_settled(account, 2 * len(stack.log.acknowledged), timeout_s=90)
    t = report(stack.tally(account))
    assert_nothing_lost(t)
    assert stack.log.failed, "no publish met the outage: the test proved nothing"
    assert w.proc is not None and w.proc.poll() is None and len(stack.workers) == 1
    assert stack.endpoint.delivered() > delivered_at_restart
    print(f"redis SIGKILL: {len(stack.log.failed)} publishes failed with PublishError during the outage, "
          f"{t.failed_publishes_enqueued} of them had been enqueued before the reply was lost")


def test_publish_while_redis_is_down_fails_fast_and_enqueues_nothing(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    # Given a running stack (outbox off; 20 s visibility timeout: a delivery in flight when Redis
    # died, whose ack could not be written, comes back after it) that has taken 500 events
    stack = make_stack({"WEBHOOKS_VISIBILITY_TIMEOUT_S": "20"})
    stack.subscribe(account)
    stack.start_worker()
    stack.publish(account, 500, prefix="before")
    # When Redis is down and 200 more events are published
    stack.redis.kill()
    slowest = 0.0
    for i in range(200):
        started = time.monotonic()
        assert not stack.log.publish(account, f"evt_down{i}")
        slowest = max(slowest, time.monotonic() - started)
    # Then every one failed with PublishError within the publish timeout (2 s)
    assert len(stack.log.failed) == 200 and slowest < 2.5
    # When Redis is back and 500 more events are published
    stack.redis.restart()
    stack.publish(account, 500, prefix="after")
    # Then exactly the 1,000 acknowledged events are delivered; of the 200 failed, nothing at all
    stack.wait_settled(account, 2000, timeout_s=90)
    t = report(stack.tally(account))
    assert_nothing_lost(t)
    assert t.enqueued == t.published == 2000
    assert t.failed_publishes_enqueued == 0
    print(f"redis down, outbox off: slowest failing publish {slowest * 1000:.0f} ms")


def test_publish_while_redis_is_down_goes_to_the_outbox_and_is_delivered_later(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally], tmp_path: Path
) -> None:
    # Given a running stack with the producer outbox on (and a 20 s visibility timeout)
    stack = make_stack({"WEBHOOKS_OUTBOX": str(tmp_path / "spool.sqlite"), "WEBHOOKS_VISIBILITY_TIMEOUT_S": "20"})
    stack.subscribe(account)
    stack.start_worker()
    stack.publish(account, 400, prefix="before")
    # When Redis is down while 200 events are published
    stack.redis.kill()
    stack.publish(account, 200, prefix="down")
    # Then none failed: each went into the spool
    assert not stack.log.failed and len(stack.log.spooled) == 200
    # When Redis is back and 400 more are published (they queue behind the backlog, in order)
    stack.redis.restart()
    stack.publish(account, 400, prefix="after")
    # Then the flusher empties the spool and all 1,000 events are delivered
    stack.wait_settled(account, 2000, timeout_s=90)
    t = report(stack.tally(account))
    assert_nothing_lost(t)
    assert t.enqueued == t.published == 2000
