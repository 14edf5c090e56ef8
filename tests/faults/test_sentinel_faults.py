"""Redis Sentinel: a primary, a replica and three sentinels on loopback; the broker and our own
state both reach the primary through WEBHOOKS_REDIS_URL=sentinel://…; a failover in the middle
of a 2,000-delivery stream loses nothing (duplicates only, with the same webhook-id).

The events are all acknowledged before the failover: replication is asynchronous, so a publish
acknowledged by the old primary in the last instant before it is demoted can be lost, which
docs/reliability.md says. What this proves is that the workers, the worker-side writes and the
recovery mechanisms (heartbeat, sweep, reconciler) ride through a failover, with DEFAULT settings.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.faults.support import Stack, Tally, assert_nothing_lost, wait_until
from tests.faults.test_fleet_faults import DEFAULT_RECOVERY
from tests.support.redis_server import REDIS_SERVER
from tests.support.sentinel_cluster import SentinelCluster

pytestmark = [pytest.mark.faults,
              pytest.mark.skipif(shutil.which(REDIS_SERVER) is None, reason="no redis-server to run sentinels")]

EVENTS = 1000  # x 2 subscriptions = 2,000 deliveries


@pytest.mark.parametrize("how", ["sentinel-failover", "paused-sentinel-failover", "primary-sigkill"])
def test_a_sentinel_failover_mid_stream_loses_nothing(
    make_stack: Callable[..., Stack], account: str, report: Callable[[Tally], Tally], tmp_path: Path, how: str
) -> None:
    # Given a primary, a replica and three sentinels, and a stack (worker with beat, producer)
    # that reaches Redis only through the sentinels, with default recovery settings
    cluster = SentinelCluster(tmp_path / "sentinel")
    stack = make_stack(DEFAULT_RECOVERY, redis_server=cluster)
    assert stack.env["WEBHOOKS_REDIS_URL"].startswith("sentinel://")
    stack.subscribe(account)
    w = stack.start_worker(beat=True)
    old_primary = cluster.primary_port()
    # When 1,000 events are published and, mid-stream, the primary is failed over to the replica
    # (SENTINEL FAILOVER: the old primary is demoted; the same with its writes paused first, the
    # planned-switch recipe; or SIGKILL: the sentinels find it gone)
    stack.publish(account, EVENTS)
    wait_until(lambda: stack.endpoint.delivered() >= 500, 90, message="500 deliveries before the failover")
    before = stack.endpoint.delivered()
    started = time.monotonic()
    if how == "primary-sigkill":
        new_primary = cluster.kill_primary()
    else:
        new_primary = cluster.failover(pause_writes_ms=15000 if how.startswith("paused") else None)
    switched_s = time.monotonic() - started
    # Then every delivery arrives: lost 0, duplicates only with the same webhook-id
    stack.wait_settled(account, 2 * EVENTS, timeout_s=180)
    recovered_s = time.monotonic() - started
    t = report(stack.tally(account))
    assert_nothing_lost(t)
    assert t.delivered_unique == 2 * EVENTS
    assert new_primary != old_primary and before < 2 * EVENTS
    # ... and the worker rode through it (reconnected to the new primary, never exited)
    assert w.proc is not None and w.proc.poll() is None
    assert "Unrecoverable error" not in w.log()
    print(f"\nSentinel {how} at {before} of 2,000 delivered: primary moved in {switched_s:.1f}s, "
          f"all delivered {recovered_s:.1f}s after it, {t.duplicates} duplicates")
