"""The fleet heals in seconds, with DEFAULT recovery settings (visibility timeout, heartbeat,
sweep interval, reconciler deadline): only the attempt deadline is shortened (5 s).

- a SIGKILLed worker's share (retries it held on a countdown) arrives within 60 s of the kill
  (but a message kombu lost at the kill itself, kombu #305: the reconciler's, 50 s after it was due);
- a live worker keeps a countdown twice as long as the visibility timeout: it runs once;
- SIGTERM puts every countdown the worker held back on its queue at once, and another worker
  runs them at their ETA, not after a visibility timeout;
- a rolling restart of two workers under load delays no delivery by more than a few seconds.
"""
from __future__ import annotations

import signal
import threading
import time
from typing import Callable

import pytest

from tests.faults.support import Stack, Tally, assert_nothing_lost, kill_worker, paced, wait_until
from tests.support.receiver import Reply
from webhooks.settings import SETTINGS_DOC

pytestmark = pytest.mark.faults

# The recovery mechanism's own settings at their defaults (the fault stacks shorten them).
DEFAULT_RECOVERY = {name: SETTINGS_DOC[name][0] for name in
                    ("WEBHOOKS_VISIBILITY_TIMEOUT_S", "WEBHOOKS_RECONCILE_AFTER_S", "WEBHOOKS_MAX_COUNTDOWN_S")}
# Every first attempt fails on purpose: keep the breaker out of it.
NO_BREAKER = {"WEBHOOKS_BREAKER_MIN_REQUESTS": "1000000"}


def _wall_times(stack: Stack, account: str, field: str) -> list[float]:
    from webhooks import records

    return [float((records.load(d) or {}).get(field) or 0) for d in stack.enqueued(account)]


def test_a_sigkilled_workers_share_arrives_within_60_s_of_the_kill(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    # Given default recovery settings, two workers (beat in the second) and two subscriptions
    # whose first attempts all fail, with a 20 s retry step: each worker then holds its share
    # of 2,000 retries on a countdown, in its memory, unacked in Redis (two more short steps, so
    # that an attempt timing out on a loaded machine is retried, not dead-lettered)
    stack = make_stack({**DEFAULT_RECOVERY, **NO_BREAKER})
    stack.subscribe(account, retry_schedule="20,2,2")
    stack.endpoint.set_mode(Reply(status=500))
    victim = stack.start_worker(beat=False)
    survivor = stack.start_worker(beat=True)
    stack.publish(account, 1000)
    wait_until(lambda: stack.endpoint.answered >= 2000, 120, message="2,000 failed first attempts")
    stack.endpoint.set_mode(Reply(status=200))
    held = stack.redis.client().hlen("unacked")
    victim_attempts = victim.log().count(" attempt 1: 500")
    # When the first worker is SIGKILLed
    kill_worker(victim, signal.SIGKILL)
    killed_at, killed_wall = time.monotonic(), time.time()
    # Then every delivery arrives within 60 s of the kill (the survivor's own at their ETA, the
    # victim's once its heartbeat has been silent for the visibility timeout) ...
    stack.wait_settled(account, 2000, timeout_s=120)
    recovered_s = time.monotonic() - killed_at
    t = report(stack.tally(account))
    assert_nothing_lost(t)
    assert t.delivered_unique == 2000
    assert held >= 1500 and victim_attempts >= 400, (held, victim_attempts)
    assert survivor.proc is not None and survivor.proc.poll() is None
    # ... except a message kombu lost outright at the kill (taken by BRPOP, not yet recorded as
    # unacked: kombu #305), which the reconciler re-sends 50 s after its due time, or a retry
    # whose own attempt failed again (a timeout on a loaded machine): a few at most
    from webhooks import records

    late = [d for d in stack.enqueued(account) if float((records.load(d) or {}).get("delivered_at") or 0) > killed_wall + 60]
    assert len(late) <= 3, f"{len(late)} deliveries arrived more than 60 s after the kill"
    for d in late:
        reason = (records.load(d) or {}).get("reconciled") or len(records.attempts(d)) > 2
        assert reason, f"{d} arrived late, neither re-sent by the reconciler nor failed again: {records.attempts(d)}"
    print(f"\nworker SIGKILL (defaults): {held} held at the kill; {2000 - len(late)} delivered within 60 s of it, "
          f"{len(late)} later (re-sent by the reconciler or failed again); all {recovered_s:.1f}s after it")


def test_a_live_worker_keeps_a_countdown_twice_the_visibility_timeout_and_runs_it_once(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    # Given default recovery settings (a 40 s visibility timeout), no jitter, and a retry step of
    # 90 s, held by a worker as a countdown (the cap is 600 s)
    assert DEFAULT_RECOVERY["WEBHOOKS_VISIBILITY_TIMEOUT_S"] == "40"
    stack = make_stack({**DEFAULT_RECOVERY, **NO_BREAKER, "WEBHOOKS_RETRY_JITTER": "0", "WEBHOOKS_VISIBILITY_TIMEOUT_S": "40"})
    stack.subscribe(account, paths=("/a",), retry_schedule="90")
    stack.endpoint.set_mode(Reply(status=500))
    stack.start_worker(beat=True)
    # ... and a second worker, which sweeps the unacked set every 5 s for stale messages
    stack.start_worker(beat=False)
    # When an event's first attempt fails
    stack.publish(account, 1)
    wait_until(lambda: stack.endpoint.answered >= 1, 30, message="the first attempt")
    failed_at = time.monotonic()
    stack.endpoint.set_mode(Reply(status=200))
    # Then the retry runs once, at its ETA (90 s later), and never earlier or twice
    wait_until(lambda: stack.endpoint.delivered() >= 1, 130, 0.2, message="the retry")
    retried_after = time.monotonic() - failed_at
    stack.wait_settled(account, 1, timeout_s=10)
    t = report(stack.tally(account, subscriptions=1))
    assert_nothing_lost(t)
    assert 88 <= retried_after <= 100, retried_after
    assert stack.endpoint.answered == 2 and t.duplicates == 0, (stack.endpoint.answered, t)


def test_sigterm_puts_held_countdowns_back_at_once_and_another_worker_runs_them_at_their_eta(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    # Given default recovery settings, one worker holding 200 retries on a 10 s countdown
    stack = make_stack({**DEFAULT_RECOVERY, **NO_BREAKER, "WEBHOOKS_RETRY_JITTER": "0"})
    stack.subscribe(account, paths=("/a",), retry_schedule="10")
    stack.endpoint.set_mode(Reply(status=500))
    first = stack.start_worker(beat=False)
    assert first.proc is not None
    started = time.time()
    stack.publish(account, 200)
    wait_until(lambda: stack.endpoint.answered >= 200, 60, message="200 failed first attempts")
    stack.endpoint.set_mode(Reply(status=200))
    r = stack.redis.client()
    wait_until(lambda: r.hlen("unacked") == 200, 20, message="the worker to hold the 200 retries")
    # When it gets SIGTERM
    first.signal(signal.SIGTERM)
    wait_until(lambda: first.proc.poll() is not None, 30, 0.1, message="the worker to exit after SIGTERM")
    # Then it exits 0 having put every held countdown back on the retries queue
    assert first.proc.returncode == 0, first.log()[-3000:]
    assert r.hlen("unacked") == 0 and r.llen("retries") == 200, (r.hlen("unacked"), r.llen("retries"))
    assert "Restoring 200 unacknowledged message(s)" in first.log()
    # ... and a second worker delivers them at their ETA, not after a visibility timeout
    stack.start_worker(beat=True)
    stack.wait_settled(account, 200, timeout_s=60)
    t = report(stack.tally(account, subscriptions=1))
    assert_nothing_lost(t)
    delivered = _wall_times(stack, account, "delivered_at")
    assert min(delivered) >= started + 10, "a retry ran before its ETA"
    assert max(delivered) - started <= 35, f"the last retry came {max(delivered) - started:.1f}s after the start"
    print(f"\nSIGTERM with 200 countdowns held: all delivered {max(delivered) - started:.1f}s after the first attempts")


def test_a_rolling_restart_of_two_workers_under_load_delays_no_delivery_by_more_than_a_few_seconds(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally]
) -> None:
    # Given default recovery settings, two workers (each with beat) and a steady producer
    stack = make_stack(DEFAULT_RECOVERY)
    stack.subscribe(account)
    stack.start_worker(beat=True)
    stack.start_worker(beat=True)
    stop = threading.Event()

    def produce() -> None:
        for i in paced(1000, 25, stop):
            stack.log.publish(account, f"evt_r{i}")

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    # When each worker in turn gets SIGTERM, exits, and is replaced, while events keep coming
    restart_s = []
    for i in range(2):
        wait_until(lambda: stack.endpoint.delivered() >= 300 * (i + 1), 60, message="deliveries before the restart")
        old = stack.workers[i]
        assert old.proc is not None
        t0 = time.monotonic()
        old.signal(signal.SIGTERM)
        wait_until(lambda: old.proc.poll() is not None, 30, 0.1, message="the worker to exit")
        assert old.proc.returncode == 0, old.log()[-3000:]
        stack.start_worker(beat=True)
        restart_s.append(time.monotonic() - t0)
    producer.join(90)
    # Then everything arrives, and no delivery waited more than a few seconds
    stack.wait_settled(account, 2000, timeout_s=60)
    t = report(stack.tally(account))
    assert_nothing_lost(t)
    created = _wall_times(stack, account, "created")
    delivered = _wall_times(stack, account, "delivered_at")
    worst = max(d - c for c, d in zip(created, delivered))
    assert worst <= 8, f"a delivery waited {worst:.1f}s"
    print(f"\nrolling restart of 2 workers: restarts took {', '.join(f'{s:.1f}s' for s in restart_s)}; "
          f"slowest delivery {worst:.1f}s after publish")
