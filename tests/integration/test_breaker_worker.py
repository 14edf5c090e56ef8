"""The circuit breaker on a real worker: it opens after the threshold, holds deliveries back
without spending their attempts, lets one probe through after the cool-down, and closes.

The module's worker opens the breaker after 3 failed attempts of 3 and cools down for 4 s
(WEBHOOKS_BREAKER_* settings), so the whole episode takes seconds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Iterator

import pytest

import webhooks
from webhooks import deadletters, events, records
from webhooks.breaker import CircuitBreaker
from webhooks.connection import get_redis
from webhooks.limits import EndpointSlots
from tests.support.receiver import Reply
from tests.support.worker import ROOT, Worker, wait_until

pytestmark = pytest.mark.integration

BREAKER_ENV = {
    "WEBHOOKS_BREAKER_MIN_REQUESTS": "3",
    "WEBHOOKS_BREAKER_FAILURE_RATIO": "1",
    "WEBHOOKS_BREAKER_WINDOW_S": "60",
    "WEBHOOKS_BREAKER_COOLDOWN_S": "4",
}
COOLDOWN_S = 4.0


@pytest.fixture(scope="module")
def breaker_worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker whose breaker opens after 3 failures and cools down for 4 s."""
    log = tmp_path_factory.mktemp("breaker") / "worker.log"
    w = Worker({**stack_env, **BREAKER_ENV}, log).start()
    yield w
    w.stop()


def _status(env: dict[str, str], account: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "webhooks", "status", "--account", account, "--json"], cwd=ROOT,
                          env={**os.environ, **env, **BREAKER_ENV, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_breaker_opens_holds_deliveries_without_spending_attempts_probes_and_closes(
    configured: dict[str, str], breaker_worker: Worker, receiver: Any, account: str
) -> None:
    r = get_redis()
    breaker = CircuitBreaker(r)
    # Given an endpoint that fails every request, and a schedule of six 0.2 s steps
    receiver.set_default(Reply(status=500, body=b"down"))
    sub = webhooks.subscriptions.create(account, receiver.url("/down"), ["message.sent"],
                                        retry_schedule="0.2,0.2,0.2,0.2,0.2,0.2")
    # When five events are published
    ids = [webhooks.publish(account, "message.sent", events.sample("message.sent")).delivery_ids[0] for _ in range(5)]
    # Then the breaker opens after the threshold and, once in-flight attempts end, attempts stop
    wait_until(lambda: breaker.state(sub.id)["state"] == "open", 15, message="the breaker to open")
    wait_until(lambda: EndpointSlots(r).in_flight(sub.id) == 0, 10, message="in-flight attempts to end")
    seen_when_open = len(receiver.requests_for("/down"))
    assert seen_when_open >= 3
    assert _status(configured, account)["subscriptions"][0]["breaker"] == "open"
    # When the endpoint recovers (the breaker does not know yet)
    receiver.set_default(Reply(status=200))
    retry_at = breaker.state(sub.id)["retry_at"]
    assert retry_at is not None
    # Then nothing is sent while the breaker stays open ...
    def left_open() -> bool:
        # Count first, state second: if the breaker is still open after the count was taken,
        # it was open when the count was taken (the endpoint answers 200 now, so a probe
        # cannot fail and re-open it in between).
        seen = len(receiver.requests_for("/down"))
        if breaker.state(sub.id)["state"] != "open":
            return True
        assert seen == seen_when_open, "an attempt went out while the breaker was open"
        return False

    wait_until(left_open, COOLDOWN_S + 5, 0.02, message="the breaker to leave the open state")
    # ... after the cool-down a probe goes through, it succeeds, the breaker closes and every delivery arrives
    wait_until(lambda: all(records.load(d)["status"] == "delivered" for d in ids), 20, message="all five delivered")
    probe = receiver.requests_for("/down")[seen_when_open]
    assert probe.at >= retry_at - 0.05
    assert breaker.state(sub.id)["state"] == "closed"
    assert _status(configured, account)["subscriptions"][0]["breaker"] == "closed"
    # ... and waiting spent no schedule steps: no dead letters, retries counted only for real failures
    assert deadletters.list_dead(account) == []
    for d in ids:
        log = records.attempts(d)
        assert int(records.load(d).get("retries") or 0) == sum(1 for a in log if a["verdict"] != "delivered")
    assert "endpoint.failing" in breaker_worker.log() and "endpoint.recovered" in breaker_worker.log()
