"""Health a supervisor can use, and two beats by mistake.

``python -m webhooks.liveness worker|beat`` (the compose healthchecks) must fail when the
process is stuck (SIGSTOP) or cut off from Redis, not only when it is gone, and pass again
when it recovers. Two ``celery -A workers beat`` processes must not deliver anything twice:
the retry mover and the reconciler both run twice a tick, and each moves or re-sends an id once.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Callable

import pytest

from tests.faults.support import Stack, wait_until
from tests.support.receiver import Reply
from tests.support.worker import ROOT

pytestmark = pytest.mark.faults


def _probe(stack: Stack, kind: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webhooks.liveness", kind], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, env={**os.environ, **stack.env, "PYTHONPATH": str(ROOT)})


def _healthy(stack: Stack, kind: str) -> bool:
    return _probe(stack, kind).returncode == 0


def _stuck_then_cut_off(stack: Stack, kind: str, pid: int) -> None:
    # Then the probe passes while the process works
    wait_until(lambda: _healthy(stack, kind), 30, 0.5, message=f"{kind} to be healthy")
    # When the process is frozen (SIGSTOP: alive, but its loop does not turn)
    os.killpg(pid, signal.SIGSTOP)
    try:
        # Then the probe fails within its 15 s freshness bound, saying how stale the process is
        wait_until(lambda: not _healthy(stack, kind), 40, 1, message=f"the probe to fail on a stopped {kind}")
        failed = _probe(stack, kind)
        assert failed.returncode == 1 and "ago" in failed.stderr, failed
    finally:
        os.killpg(pid, signal.SIGCONT)
    # ... and passes again once it runs
    wait_until(lambda: _healthy(stack, kind), 30, 0.5, message=f"{kind} to be healthy after SIGCONT")
    # When Redis goes away (the process itself is fine)
    stack.redis.kill()
    try:
        # Then the probe fails too
        wait_until(lambda: not _healthy(stack, kind), 40, 1, message=f"the probe to fail with Redis gone ({kind})")
    finally:
        stack.redis.restart()
    # ... and passes again once the process has reconnected
    wait_until(lambda: _healthy(stack, kind), 60, 0.5, message=f"{kind} to be healthy after Redis came back")


def test_the_worker_liveness_probe_fails_when_the_worker_is_stuck_or_cut_off_from_redis(
    make_stack: Callable[..., Stack]
) -> None:
    # Given a stack with one worker and no process that could refresh its file but the worker
    stack = make_stack()
    w = stack.start_worker(beat=False)
    assert w.proc is not None
    _stuck_then_cut_off(stack, "worker", w.proc.pid)
    # When the worker is gone, Then the probe fails (no running worker has a file)
    w.stop()
    failed = _probe(stack, "worker")
    assert failed.returncode == 1 and "no running worker" in failed.stderr, failed


def test_the_beat_liveness_probe_fails_when_beat_is_stuck_or_cut_off_from_redis(make_stack: Callable[..., Stack]) -> None:
    # Given a stack with a beat process (and no worker: beat's liveness is its own)
    stack = make_stack()
    b = stack.start_beat()
    assert b.proc is not None
    _stuck_then_cut_off(stack, "beat", b.proc.pid)


def test_two_beats_by_mistake_deliver_nothing_twice(make_stack: Callable[..., Stack], account: str) -> None:
    from webhooks import records

    # Given TWO beat processes, a 1 s countdown cap (a 6 s retry step parks in Redis), a
    # reconciler deadline of 5 s, and no worker yet
    stack = make_stack({"WEBHOOKS_MAX_COUNTDOWN_S": "1", "WEBHOOKS_RECONCILE_AFTER_S": "5",
                        "WEBHOOKS_BREAKER_MIN_REQUESTS": "1000000"})
    stack.start_beat()
    stack.start_beat()
    lost_account, parked_account = f"{account}-lost", f"{account}-parked"
    stack.subscribe(lost_account, paths=("/l",), retry_schedule="6,6")
    stack.subscribe(parked_account, paths=("/p",), retry_schedule="6")
    # ... 200 deliveries whose task messages are lost (the queue is emptied before any worker)
    stack.publish(lost_account, 200, prefix="l")
    stack.redis.client().delete("deliveries")
    # ... and 200 whose first attempt fails, so that their retry parks in Redis
    stack.endpoint.set_mode(Reply(status=500))
    stack.publish(parked_account, 200, prefix="p")
    stack.start_worker(beat=False)
    wait_until(lambda: stack.endpoint.answered >= 200, 60, message="200 failed first attempts")
    stack.endpoint.set_mode(Reply(status=200))
    # When both beats move due retries every second and reconcile every 5 s
    stack.wait_settled(lost_account, 200, timeout_s=90)
    stack.wait_settled(parked_account, 200, timeout_s=60)
    # Then every delivery arrived exactly once: each lost one re-sent once, each parked one moved once
    lost, parked = stack.enqueued(lost_account), stack.enqueued(parked_account)
    ok = stack.endpoint.snapshot()
    assert len(lost) == len(parked) == 200
    assert set(ok) == set(lost) | set(parked), "a delivery never arrived, or one arrived that was never enqueued"
    assert max(ok.values()) == 1, f"{sum(c - 1 for c in ok.values())} deliveries arrived twice"
    assert sum(int((records.load(d) or {}).get("reconciled") or 0) for d in lost) == 200
    assert all(len(records.attempts(d)) == 2 for d in parked)
    assert all(b.log().count("webhooks.reconcile") >= 2 for b in stack.beats)
    print(f"\ntwo beats: 200 re-sent by the reconciler and 200 moved from parked, each delivered once")
