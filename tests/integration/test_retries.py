"""Retries on a real worker: the long tier parks in Redis, 410 disables, Retry-After is
honoured, redirects are not followed, and the worker refuses a countdown cap that could
outlive the visibility timeout.

The module's worker runs with WEBHOOKS_MAX_COUNTDOWN_S=1, so a subscription's 3 s step is
a long-tier step: the clock is shortened by configuration, not by sleeping for hours.
"""
from __future__ import annotations

import base64
import json
import math
import threading
import time
from email.utils import formatdate
from typing import Any, Iterator

import pytest
import redis

import webhooks
from webhooks import deadletters, events, mover, records
from webhooks.enqueue import DELIVERIES_QUEUE, RETRIES_QUEUE
from webhooks.keys import K
from tests.support.receiver import Reply
from tests.support.worker import Worker, wait_until

pytestmark = pytest.mark.integration

MAX_COUNTDOWN_S = 1.0


@pytest.fixture(scope="module")
def short_cap_worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker (with beat) whose Celery countdowns are capped at 1 s: longer steps park."""
    log = tmp_path_factory.mktemp("retries") / "worker.log"
    w = Worker({**stack_env, "WEBHOOKS_MAX_COUNTDOWN_S": str(MAX_COUNTDOWN_S)}, log).start()
    yield w
    w.stop()


def _task_args(raw: bytes) -> list[Any]:
    """The args of a task message as kombu's Redis transport stores it (queue or unacked)."""
    doc = json.loads(raw)
    message = doc[0] if isinstance(doc, list) else doc  # unacked entries are [message, exchange, key]
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    decoded = json.loads(body)
    return list(decoded[0]) if isinstance(decoded, list) and decoded and isinstance(decoded[0], list) else []


def _broker_messages_for(r: redis.Redis, delivery_id: str) -> dict[str, int]:
    """How many task messages for ``delivery_id`` sit in each queue and in the unacked hash."""
    found = {"unacked": 0, DELIVERIES_QUEUE: 0, RETRIES_QUEUE: 0}
    for raw in r.hvals("unacked"):
        if delivery_id in _task_args(raw):
            found["unacked"] += 1
    for queue in (DELIVERIES_QUEUE, RETRIES_QUEUE):
        for raw in r.lrange(queue, 0, -1):
            if delivery_id in _task_args(raw):
                found[queue] += 1
    return found


def _redis(env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(env["WEBHOOKS_REDIS_URL"])


def test_worker_refuses_to_start_when_the_visibility_timeout_leaves_the_heartbeat_no_margin(
    stack_env: dict[str, str], tmp_path: Any
) -> None:
    # Given a visibility timeout (20 s: a beat every 4 s, 16 s of tolerance) shorter than one
    # attempt (15 s) plus margin: a solo pool's attempt would hold the heartbeat too long
    env = {**stack_env, "WEBHOOKS_TOTAL_TIMEOUT_S": "15", "WEBHOOKS_VISIBILITY_TIMEOUT_S": "20"}
    w = Worker(env, tmp_path / "worker.log", beat=False)
    # When the worker process starts
    with pytest.raises(RuntimeError, match="worker exited") as failed:
        w.start(timeout_s=60)
    # Then it exits non-zero before taking any work, naming both settings
    w.stop()
    assert w.proc is not None and w.proc.returncode not in (0, None)
    assert "WEBHOOKS_VISIBILITY_TIMEOUT_S=20" in str(failed.value)
    assert "WEBHOOKS_TOTAL_TIMEOUT_S=15" in str(failed.value)
    assert " ready." not in w.log()


def test_worker_starts_with_a_countdown_cap_longer_than_the_visibility_timeout(
    own_env: dict[str, str], tmp_path: Any
) -> None:
    # Given a countdown cap of 10 min and a 40 s visibility timeout (the default: the heartbeat
    # keeps held countdowns fresh, so the cap no longer has to fit in the timeout), on a Redis
    # of this module's own (a 40 s worker would sweep other tests' 1 h unacked messages)
    env = {**own_env, "WEBHOOKS_MAX_COUNTDOWN_S": "600", "WEBHOOKS_VISIBILITY_TIMEOUT_S": "40"}
    w = Worker(env, tmp_path / "worker.log", beat=False)
    # When the worker process starts, Then it is ready
    try:
        w.start(timeout_s=60)
        assert " ready." in w.log()
    finally:
        w.stop()


def test_a_long_step_is_parked_in_redis_not_held_by_the_worker_and_delivered_once_when_due(
    configured: dict[str, str], short_cap_worker: Worker, receiver: Any, account: str
) -> None:
    r = _redis(configured)
    # Given an endpoint that fails twice, and a schedule whose second step (3 s) is past the 1 s cap
    webhooks.subscriptions.create(account, receiver.url("/parked"), ["message.sent"], retry_schedule="0.2,3")
    receiver.script("/parked", [Reply(status=500), Reply(status=500)])
    # When an event is published
    did = webhooks.publish(account, "message.sent", events.sample("message.sent")).delivery_ids[0]
    # Then after the second failure the delivery waits in wh:parked, due about 3 s later
    wait_until(lambda: records.load(did)["status"] == "parked", 15, message="the delivery to be parked")
    parked_at = time.time()
    due = r.zscore(K.parked(), did)
    assert due is not None and 3.0 - 0.5 <= due - parked_at <= 3.0 * 1.2 + 0.5
    assert len(receiver.requests_for("/parked")) == 2
    # ... and the worker holds no message for it (no ETA task in RAM, nothing unacked or queued)
    wait_until(lambda: sum(_broker_messages_for(r, did).values()) == 0, 2, message="the parking task to be acked")
    assert r.zscore(K.parked(), did) is not None, "moved back before it was due"

    # When it falls due while a second mover races the worker's beat (the mover must be safe twice)
    stop = threading.Event()
    moved: list[int] = []

    def second_beat() -> None:
        while not stop.wait(0.01):
            moved.append(mover.move_due())

    racer = threading.Thread(target=second_beat, daemon=True)
    racer.start()
    try:
        receiver.wait_for(lambda rc: len(rc.requests_for("/parked")) >= 3, timeout_s=15)
        wait_until(lambda: records.load(did)["status"] == "delivered", 10, message="the delivery to be delivered")
    finally:
        stop.set()
        racer.join()
    # Then it was delivered exactly once more, not before it was due, and nothing of it is left anywhere
    wait_until(lambda: sum(_broker_messages_for(r, did).values()) == 0, 5, message="no message left for it")
    third = receiver.requests_for("/parked")[2]
    assert third.at >= due - 0.05
    assert len(receiver.requests_for("/parked")) == 3
    assert [a["status"] for a in records.attempts(did)] == [500, 500, 200]
    assert "duplicates" not in records.load(did)
    assert r.zscore(K.parked(), did) is None


def test_410_gone_disables_the_subscription_and_dead_letters_once_with_reason_gone(
    configured: dict[str, str], short_cap_worker: Worker, receiver: Any, account: str
) -> None:
    # Given an endpoint that answers 410 Gone, and a schedule with retries left
    sub = webhooks.subscriptions.create(account, receiver.url("/gone"), ["message.sent"], retry_schedule="0.2,0.2,0.2")
    receiver.script("/gone", [Reply(status=410, body=b"gone")])
    # When an event is published
    did = webhooks.publish(account, "message.sent", events.sample("message.sent")).delivery_ids[0]
    # Then there is one dead letter, reason "gone", after one attempt, and the subscription is disabled
    wait_until(lambda: len(deadletters.list_dead(account)) == 1, 15, message="one dead letter")
    entry = deadletters.list_dead(account)[0]
    assert (entry["delivery_id"], entry["reason"], entry["status"]) == (did, "gone", 410)
    after = webhooks.subscriptions.get(account, sub.id)
    assert after.enabled is False and "410" in (after.disabled_reason or "")
    assert [a["status"] for a in records.attempts(did)] == [410]
    # When another event is published to the disabled subscription
    later = webhooks.publish(account, "message.sent", events.sample("message.sent")).delivery_ids
    # Then nothing more reaches the endpoint and no second dead letter is written
    for other in later:
        wait_until(lambda: records.load(other)["status"] == "discarded", 15, message="the later delivery discarded")
    assert len(receiver.requests_for("/gone")) == 1
    assert records.load(did)["status"] == "dead"
    assert len(deadletters.list_dead(account)) == 1


def _in_4_s_as_http_date() -> tuple[str, float]:
    when = math.floor(time.time()) + 4
    return formatdate(when, usegmt=True), float(when)


@pytest.mark.parametrize("status,retry_after,step_s,expected", [
    pytest.param(429, "2", 0.2, "2", id="429 seconds"),
    pytest.param(503, "60", 1.0, "clamp", id="503 clamped to max(2*step, 5 s)"),
    pytest.param(429, "date", 0.2, "date", id="429 HTTP date"),
])
def test_throttling_honours_retry_after_clamped_to_the_step(
    configured: dict[str, str], short_cap_worker: Worker, receiver: Any, account: str,
    status: int, retry_after: str, step_s: float, expected: str,
) -> None:
    # Given an endpoint that throttles once with a Retry-After header, then accepts
    header, date_at = _in_4_s_as_http_date() if retry_after == "date" else (retry_after, 0.0)
    webhooks.subscriptions.create(account, receiver.url("/busy"), ["message.sent"], retry_schedule=f"{step_s},{step_s}")
    receiver.script("/busy", [Reply.retry_after(status, header)])
    # When an event is published
    did = webhooks.publish(account, "message.sent", events.sample("message.sent")).delivery_ids[0]
    receiver.wait_for(lambda rc: len(rc.requests_for("/busy")) == 2, timeout_s=15)
    first, second = receiver.requests_for("/busy")
    gap = second.at - first.at
    # Then the retry waited at least what the server asked for, clamped to [step, max(2*step, 5 s)]
    if expected == "2":
        assert gap >= 2.0
    elif expected == "clamp":
        upper = max(2 * step_s, 5.0)
        assert upper <= gap < upper * 1.2 + 1.0  # not the 60 s asked for
    else:
        assert gap >= date_at - first.at - 0.1
    wait_until(lambda: records.load(did)["status"] == "delivered", 10, message="delivered")
    assert [a["verdict"] for a in records.attempts(did)] == ["throttled", "delivered"]


def test_a_redirect_is_not_followed_but_logged_as_a_failure_and_retried_on_schedule(
    configured: dict[str, str], short_cap_worker: Worker, receiver: Any, account: str
) -> None:
    # Given an endpoint that redirects once to another path, then accepts
    webhooks.subscriptions.create(account, receiver.url("/moved"), ["message.sent"], retry_schedule="0.5")
    receiver.script("/moved", [Reply.redirect(302, receiver.url("/target"))])
    # When an event is published
    did = webhooks.publish(account, "message.sent", events.sample("message.sent")).delivery_ids[0]
    # Then the redirecting path is asked twice (the retry after the 0.5 s step), the target never
    wait_until(lambda: records.load(did)["status"] == "delivered", 15, message="delivered")
    first, second = receiver.requests_for("/moved")
    assert second.at - first.at >= 0.5
    assert receiver.requests_for("/target") == []
    log = records.attempts(did)
    assert [(a["status"], a["error"], a["verdict"]) for a in log] == [(302, "http_302", "retry"), (200, None, "delivered")]
