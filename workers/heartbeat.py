"""The worker's heartbeat: keep what this worker holds from being handed to another worker.

kombu's Redis transport scores each message a worker takes, in the ``unacked_index`` sorted
set, with the time it was taken, and nothing refreshes that score; every consumer hands a
message out again once its score is older than the visibility timeout. A long countdown or a
slow endpoint would then run twice while its holder is alive, and a short timeout would be
unsafe. This consumer bootstep re-scores every message the worker still holds (running,
prefetched, waiting on a countdown) every fifth of the visibility timeout, so only a worker
that has stopped beating (SIGKILL, OOM, a lost node) loses its messages, within the timeout.

It runs on the consumer's event loop (the worker timer), the one thread that adds to the
channel's ``qos._delivered``; pool threads only add acked tags to ``qos._dirty``. ``ZADD XX``
never re-creates a tag acked or restored meanwhile. Every 2 s it also makes a Redis round trip
and, when it succeeded, touches the worker's liveness file (``webhooks/liveness.py``).

Relies on kombu 5.7's private ``QoS._delivered``/``_dirty`` (pinned in pyproject.toml; the
tests exercise it with real processes).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from celery import bootsteps

from webhooks.recovery import heartbeat_interval_s
from webhooks.settings import get_settings

from webhooks import liveness

__all__ = ["Heartbeat", "held_tags", "refresh"]

log = logging.getLogger("workers.heartbeat")

TICK_S = 2.0
_CHUNK = 1000


def held_tags(qos: Any) -> list[str]:
    """Delivery tags the channel's QoS holds and has not acked yet."""
    dirty = qos._dirty
    return [t for t in list(qos._delivered) if t not in dirty]


def refresh(channel: Any, client: Any, now: float) -> int:
    """Re-score this channel's held messages at ``now``; returns how many tags were sent."""
    tags = held_tags(channel.qos)
    if not tags:
        client.ping()
        return 0
    pipe = client.pipeline(transaction=False)
    for i in range(0, len(tags), _CHUNK):
        pipe.zadd(channel.unacked_index_key, {t: now for t in tags[i:i + _CHUNK]}, xx=True)
    pipe.execute()
    return len(tags)


class Heartbeat(bootsteps.StartStopStep):
    """Consumer bootstep: re-score held messages every ``visibility / 5`` s, prove liveness every 2 s."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.beat_s = heartbeat_interval_s(get_settings().visibility_timeout_s)
        self.path = liveness.worker_file(c.hostname)
        self._tref: Any = None
        self._next_refresh = 0.0
        self._failing_since: float | None = None

    def start(self, c: Any) -> None:
        self._next_refresh = 0.0
        self._tref = c.timer.call_repeatedly(min(TICK_S, self.beat_s), self.tick, (c,), priority=10)

    def stop(self, c: Any) -> None:
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None

    shutdown = stop

    def tick(self, c: Any) -> None:
        """One beat: a Redis round trip (the re-score when due), then the liveness file."""
        consumer = getattr(c, "task_consumer", None)
        if consumer is None:
            return
        now = time.time()
        channel = consumer.channel
        try:
            with channel.conn_or_acquire() as client:
                if now >= self._next_refresh:
                    n = refresh(channel, client, now)
                    self._next_refresh = now + self.beat_s
                    log.debug("heartbeat: re-scored %d held message(s)", n)
                else:
                    client.ping()
        except Exception as exc:  # noqa: BLE001 - Redis away: the consumer reconnects; we keep beating
            if self._failing_since is None:
                self._failing_since = now
                log.warning("heartbeat: cannot reach Redis (%s); held messages go stale after the "
                            "visibility timeout", type(exc).__name__)
            return
        if self._failing_since is not None:
            log.warning("heartbeat: Redis reachable again after %.0fs", now - self._failing_since)
            self._failing_since = None
        try:
            liveness.touch(self.path)
        except OSError as exc:
            log.warning("heartbeat: cannot write liveness file %s: %s", self.path, exc)
