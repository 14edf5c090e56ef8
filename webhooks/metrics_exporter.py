"""The Redis-side gauges, read by ONE process (``webhooks metrics``), not by every worker.

A worker knows what it did; how deep the queues are, how many retries are parked, how many
dead letters wait and which endpoints have an open breaker is the state of the whole fleet,
in Redis. Read by every worker, each would report the same numbers N times (and Redis would
answer N times per scrape). So one small exporter reads them, per scrape, in three pipelined
round trips, with the state client's timeouts (WEBHOOKS_PUBLISH_TIMEOUT_S): a slow or dead
Redis makes ``webhooks_redis_up`` 0, never a hung scrape.

    webhooks_queue_messages{queue}          messages waiting in the deliveries / retries queue
    webhooks_parked_retries                 long-tier retries waiting in Redis (wh:parked)
    webhooks_inflight_deliveries            deliveries not yet ended (wh:inflight)
    webhooks_dead_letters[{account}]        dead letters kept (per account with the opt-in)
    webhooks_breakers_open{state}           endpoints whose breaker is open / half_open
    webhooks_subscriptions{state}           subscriptions enabled / disabled
    webhooks_redis_up                       1 when this scrape could read Redis
    webhooks_exporter_scrape_duration_seconds

Cost per scrape: O(accounts + subscriptions) small reads (each subscription's JSON and its
breaker state): fine for thousands of subscriptions at a 15 s scrape interval.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .breaker import CLOSED
from .enqueue import DELIVERIES_QUEUE, RETRIES_QUEUE
from .keys import K

__all__ = ["RedisCollector", "GAUGES", "exported_names"]

log = logging.getLogger("webhooks.metrics")

# name -> (help, label names); the per-account label is added to dead letters when opted in.
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "webhooks_queue_messages": ("Messages waiting in a delivery queue.", ("queue",)),
    "webhooks_parked_retries": ("Long-tier retries parked in Redis until due.", ()),
    "webhooks_inflight_deliveries": ("Deliveries not yet ended (pending, waiting, retrying, parked).", ()),
    "webhooks_dead_letters": ("Dead letters kept, waiting for replay or purge.", ()),
    "webhooks_breakers_open": ("Endpoints whose circuit breaker is not closed, by state.", ("state",)),
    "webhooks_subscriptions": ("Subscriptions, by state (enabled, disabled).", ("state",)),
    "webhooks_redis_up": ("1 when this scrape could read Redis, else 0.", ()),
    "webhooks_exporter_scrape_duration_seconds": ("Time this scrape spent reading Redis.", ()),
}


def exported_names() -> set[str]:
    """The sample names this exporter exposes (gauges have no suffix)."""
    return set(GAUGES)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisCollector(Collector):
    """Reads the gauges above from ``redis_factory()`` at each collect()."""

    def __init__(self, redis_factory: Any, *, per_account: bool = False) -> None:
        self._redis_factory = redis_factory
        self._per_account = per_account

    def describe(self) -> list[Any]:
        # Without describe(), registering would call collect() (a Redis read) at once.
        return []

    def read(self) -> dict[str, Any]:
        """One snapshot of the fleet's state in Redis (raises redis.RedisError)."""
        from .subscriptions import readable

        r = self._redis_factory()
        pipe = r.pipeline(transaction=False)
        pipe.llen(DELIVERIES_QUEUE)
        pipe.llen(RETRIES_QUEUE)
        pipe.zcard(K.parked())
        pipe.zcard(K.inflight())
        pipe.smembers(K.accounts())
        deliveries, retries, parked, inflight, raw_accounts = pipe.execute()
        accounts = sorted(_text(a) for a in raw_accounts)
        pipe = r.pipeline(transaction=False)
        for a in accounts:
            pipe.hlen(K.dead(a))
            pipe.hgetall(K.subs(a))
        replies = pipe.execute()
        dead = {a: int(replies[2 * i]) for i, a in enumerate(accounts)}
        # readable() skips (and logs) a damaged record instead of failing the whole scrape
        subs = [sub for i, a in enumerate(accounts) for sub in readable(a, replies[2 * i + 1])]
        pipe = r.pipeline(transaction=False)
        for sub in subs:
            pipe.hget(K.breaker(sub.id), "state")
        states = [_text(s) if s is not None else CLOSED for s in pipe.execute()] if subs else []
        return {
            "queues": {DELIVERIES_QUEUE: int(deliveries), RETRIES_QUEUE: int(retries)},
            "parked": int(parked),
            "inflight": int(inflight),
            "dead": dead,
            "breakers": {"open": states.count("open"), "half_open": states.count("half_open")},
            "subscriptions": {"enabled": sum(1 for s in subs if s.enabled), "disabled": sum(1 for s in subs if not s.enabled)},
        }

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.monotonic()
        try:
            snap = self.read()
        except Exception as exc:  # noqa: BLE001 - a scrape reports Redis down instead of failing
            log.warning("metrics exporter: cannot read Redis (%s)", type(exc).__name__)
            snap = None

        def gauge(name: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, GAUGES[name][0], labels=list(labels) if labels else None)

        if snap is not None:
            q = gauge("webhooks_queue_messages", ("queue",))
            for queue, n in snap["queues"].items():
                q.add_metric([queue], n)
            yield q
            g = gauge("webhooks_parked_retries")
            g.add_metric([], snap["parked"])
            yield g
            g = gauge("webhooks_inflight_deliveries")
            g.add_metric([], snap["inflight"])
            yield g
            if self._per_account:
                g = gauge("webhooks_dead_letters", ("account",))
                for account, n in snap["dead"].items():
                    g.add_metric([account], n)
            else:
                g = gauge("webhooks_dead_letters")
                g.add_metric([], sum(snap["dead"].values()))
            yield g
            g = gauge("webhooks_breakers_open", ("state",))
            for state, n in snap["breakers"].items():
                g.add_metric([state], n)
            yield g
            g = gauge("webhooks_subscriptions", ("state",))
            for state, n in snap["subscriptions"].items():
                g.add_metric([state], n)
            yield g
        up = gauge("webhooks_redis_up")
        up.add_metric([], 0 if snap is None else 1)
        yield up
        took = gauge("webhooks_exporter_scrape_duration_seconds")
        took.add_metric([], time.monotonic() - started)
        yield took
