"""Isolation on a real worker: an endpoint that never answers holds at most its
per-endpoint slots (WEBHOOKS_ENDPOINT_CONCURRENCY, 4) of the worker's threads, so nine
healthy endpoints get their deliveries while its attempts are still hanging."""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

import webhooks
from webhooks import events, records
from webhooks.connection import get_redis
from webhooks.keys import K
from tests.support.receiver import Reply
from tests.support.worker import Worker, wait_until

pytestmark = pytest.mark.integration

TOTAL_TIMEOUT_S = 8.0
THREADS = 8
SLOTS = 4


@pytest.fixture(scope="module")
def isolation_worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """8 threads, 4 slots per endpoint, an 8 s total deadline per attempt."""
    log = tmp_path_factory.mktemp("isolation") / "worker.log"
    env = {**stack_env, "WEBHOOKS_TOTAL_TIMEOUT_S": str(TOTAL_TIMEOUT_S), "WEBHOOKS_ENDPOINT_CONCURRENCY": str(SLOTS)}
    w = Worker(env, log, concurrency=THREADS).start()
    yield w
    w.stop()


def test_nine_healthy_endpoints_are_served_while_a_tenth_hangs_until_the_deadline(
    configured: dict[str, str], isolation_worker: Worker, receiver: Any, account: str
) -> None:
    # Given ten endpoints of one account: nine answer at once, one never answers
    healthy = [f"/ok{i}" for i in range(9)]
    for path in healthy:
        webhooks.subscriptions.create(account, receiver.url(path), ["message.sent"])
    dead = webhooks.subscriptions.create(account, receiver.url("/dead"), ["message.sent"])
    receiver.script("/dead", [Reply.hang(max_s=60)] * 50)
    # When ten events are published (100 deliveries, 10 of them to the dead endpoint)
    started = time.monotonic()
    published = [webhooks.publish(account, "message.sent", events.sample("message.sent")) for _ in range(10)]
    # Then all 90 healthy deliveries arrive before the first hanging attempt reaches its deadline
    receiver.wait_for(lambda r: all(len(r.requests_for(p)) >= 10 for p in healthy), timeout_s=TOTAL_TIMEOUT_S - 1)
    elapsed = time.monotonic() - started
    dead_ids = [d for p in published for d in p.delivery_ids if records.load(d)["sub"] == dead.id]
    assert len(dead_ids) == 10
    assert all(records.attempts(d) == [] for d in dead_ids), "a hanging attempt ended before the healthy were served"
    # ... the dead endpoint never held more than its slots of the worker's threads
    assert len(receiver.requests_for("/dead")) <= SLOTS
    assert elapsed < TOTAL_TIMEOUT_S - 1
    # ... and its other deliveries wait parked for a released slot instead of polling for one
    def waiting() -> set[str]:
        return {d.decode() for d in get_redis().zrange(K.slot_waiters(dead.id), 0, -1)}

    wait_until(lambda: len(waiting()) == len(dead_ids) - len(receiver.requests_for("/dead")), 2,
               message="every dead delivery not in flight to be waiting for a slot")
    assert waiting() == {d for d in dead_ids if records.load(d)["status"] == "waiting"}


def test_a_fresh_delivery_is_not_stuck_behind_a_backlog_of_retries(
    configured: dict[str, str], isolation_worker: Worker, receiver: Any, account: str
) -> None:
    from webhooks.enqueue import DELIVER_TASK, RETRIES_QUEUE, task_message

    # Given 3,000 retries waiting on the retries queue (ids of deliveries long gone: each is
    # a real task run that finds nothing to do)
    backlog = 3000
    r = get_redis()
    pipe = r.pipeline(transaction=False)
    for i in range(backlog):
        pipe.lpush(RETRIES_QUEUE, task_message(DELIVER_TASK, [f"msg_gone{i}"], RETRIES_QUEUE))
    pipe.execute()
    sub = webhooks.subscriptions.create(account, receiver.url("/fresh"), ["message.sent"])
    # When a fresh event is published behind them
    webhooks.publish(account, "message.sent", events.sample("message.sent"))
    # Then it is delivered while most of the retries backlog still waits (workers take from
    # both queues in turn; fresh work never queues behind every retry)
    receiver.wait_for(lambda rc: len(rc.requests_for("/fresh")) == 1, timeout_s=30)
    left = r.llen(RETRIES_QUEUE)
    assert left > backlog / 2, f"only {left} of {backlog} retries were still waiting when the fresh delivery arrived"
    wait_until(lambda: r.llen(RETRIES_QUEUE) == 0, 120, message="the retries backlog to drain")
    assert sub.id
