"""Prometheus metrics of the delivery workers: every metric is defined here, fed by small calls.

What each worker process counts (served on WEBHOOKS_METRICS_PORT by ``serve``)::

    webhooks_attempts_total{result}                    one per attempt; result: 2xx 3xx 4xx 5xx
                                                       timeout connect tls refused other
    webhooks_attempt_duration_seconds                  histogram of one attempt's duration
    webhooks_deliveries_ended_total{outcome}           delivered | dead | discarded
    webhooks_delivery_latency_seconds                  histogram: publish -> delivered
    webhooks_retries_scheduled_total{tier}             countdown (held by Celery) | parked (Redis)
    webhooks_breaker_transitions_total{from_state,to_state}

The Redis-side gauges (queue depths, parked, in flight, dead letters, open breakers, disabled
subscriptions) are read by ONE process, ``webhooks metrics`` (webhooks/metrics_exporter.py),
not by every worker.

No subscription or account label by default: a series per tenant multiplies every histogram
by the number of accounts. WEBHOOKS_METRICS_PER_ACCOUNT=1 adds an ``account`` label to all of
the above (the functions take ``account=``; it is ignored when the option is off).

Pools: threads/gevent/solo run one process, whose default registry ``serve`` exposes. Prefork
children are separate processes: with PROMETHEUS_MULTIPROC_DIR set (before the worker starts,
to an empty directory) the children write their values to files there and the parent serves
their sum; without it ``serve`` refuses (logs an error, serves nothing) rather than showing one
child's counts as the worker's.

Every function here is best effort: a metric must never break a delivery.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

from .settings import Settings, get_settings

__all__ = [
    "RESULT_CLASSES", "OUTCOMES", "LABELS", "ATTEMPT_BUCKETS_S", "LATENCY_BUCKETS_S",
    "result_class", "attempt_finished", "delivery_ended", "retry_scheduled", "breaker_transition",
    "serve", "exported_names",
]

log = logging.getLogger("webhooks.metrics")

RESULT_CLASSES = ("2xx", "3xx", "4xx", "5xx", "timeout", "connect", "tls", "refused", "other")
OUTCOMES = ("delivered", "dead", "discarded")
TIERS = ("countdown", "parked")
# Attempts end within the total deadline (10-30 s): the deadline lands in a finite bucket.
ATTEMPT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)
# Publish -> delivered spans the first attempt (sub-second) to the retry schedule (hours).
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 300, 1800, 3600, 7200, 21600, 86400)

_ERROR_CLASSES = {
    "timeout": "timeout",
    "connect_timeout": "connect",
    "connect": "connect",
    "network": "connect",
    "tls": "tls",
    "url_refused": "refused",
}


# Family name -> label names (without the opt-in ``account``): the dashboard test reads this.
LABELS: dict[str, tuple[str, ...]] = {
    "webhooks_attempts": ("result",),
    "webhooks_attempt_duration_seconds": (),
    "webhooks_deliveries_ended": ("outcome",),
    "webhooks_delivery_latency_seconds": (),
    "webhooks_retries_scheduled": ("tier",),
    "webhooks_breaker_transitions": ("from_state", "to_state"),
}


class _Metrics:
    """The worker-side metric objects, on one registry, with or without an account label."""

    def __init__(self, registry: CollectorRegistry, per_account: bool) -> None:
        extra = ("account",) if per_account else ()
        self.per_account = per_account
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

        def labels(name: str) -> tuple[str, ...]:
            return LABELS[name] + (extra if name != "webhooks_breaker_transitions" else ())

        self.attempts = Counter("webhooks_attempts", "Delivery attempts, by result class.",
                                labels("webhooks_attempts"), registry=registry)
        self.attempt_duration = Histogram("webhooks_attempt_duration_seconds",
                                          "Duration of one delivery attempt (send to response or error).",
                                          labels("webhooks_attempt_duration_seconds"), buckets=ATTEMPT_BUCKETS_S,
                                          registry=registry)
        self.ended = Counter("webhooks_deliveries_ended", "Deliveries that reached an end state, by outcome.",
                             labels("webhooks_deliveries_ended"), registry=registry)
        self.latency = Histogram("webhooks_delivery_latency_seconds",
                                 "Time from publish to delivered (retries included), for delivered deliveries.",
                                 labels("webhooks_delivery_latency_seconds"), buckets=LATENCY_BUCKETS_S,
                                 registry=registry)
        self.retries = Counter("webhooks_retries_scheduled", "Retries scheduled after a failed attempt, by tier.",
                               labels("webhooks_retries_scheduled"), registry=registry)
        # Endpoint-wide, not per delivery: no account label even with the opt-in.
        self.breaker = Counter("webhooks_breaker_transitions", "Circuit breaker state changes reported by attempts.",
                               labels("webhooks_breaker_transitions"), registry=registry)
        if not per_account:  # every series exists from the start: rate() sees the first increment
            for r in RESULT_CLASSES:
                self.attempts.labels(r)
            for o in OUTCOMES:
                self.ended.labels(o)
            for t in TIERS:
                self.retries.labels(t)

    def labels(self, account: str | None) -> tuple[str, ...]:
        return ((account or "-"),) if self.per_account else ()

    def child(self, metric: Any, values: tuple[str, ...]) -> Any:
        """``metric.labels(*values)``, looked up once: prometheus_client's labels() takes a lock
        and validates on every call (about twice the cost of the increment itself)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            # A metric without labels is its own child; .labels() with none raises.
            found = self._children[key] = metric.labels(*values) if values else metric
        return found


_metrics: _Metrics | None = None
_lock = threading.Lock()


def _get() -> _Metrics:
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _Metrics(REGISTRY, get_settings().metrics_per_account)
    return _metrics


def result_class(status: int | None, error_kind: str | None) -> str:
    """The result class of one attempt: the status' hundred ("2xx"...), else the error's class."""
    if status is not None:
        return f"{status // 100}xx" if 200 <= status < 600 else "other"
    return _ERROR_CLASSES.get(error_kind or "", "other")


def attempt_finished(result_class: str, duration_s: float, account: str | None = None) -> None:
    """Count one attempt (``result_class`` from ``result_class()``) and observe its duration."""
    try:
        m = _get()
        extra = m.labels(account)
        m.child(m.attempts, (result_class if result_class in RESULT_CLASSES else "other", *extra)).inc()
        m.child(m.attempt_duration, extra).observe(max(0.0, duration_s))
    except Exception:  # noqa: BLE001 - metrics never break a delivery
        log.debug("metrics: attempt_finished failed", exc_info=True)


def delivery_ended(outcome: str, published_at: float | None, now: float, account: str | None = None) -> None:
    """Count a delivery that reached ``outcome`` (delivered/dead/discarded) once; for a delivered
    one with a known publish time, observe the end-to-end latency ``now - published_at``."""
    try:
        m = _get()
        extra = m.labels(account)
        m.child(m.ended, (outcome, *extra)).inc()
        if outcome == "delivered" and published_at is not None:
            m.child(m.latency, extra).observe(max(0.0, now - published_at))
    except Exception:  # noqa: BLE001
        log.debug("metrics: delivery_ended failed", exc_info=True)


def retry_scheduled(tier: str, account: str | None = None) -> None:
    """Count a retry scheduled after a failed attempt: ``tier`` "countdown" or "parked"."""
    try:
        m = _get()
        m.child(m.retries, (tier, *m.labels(account))).inc()
    except Exception:  # noqa: BLE001
        log.debug("metrics: retry_scheduled failed", exc_info=True)


def breaker_transition(old: str, new: str) -> None:
    """Count a breaker state change (nothing when ``old == new``)."""
    if old == new:
        return
    try:
        m = _get()
        m.child(m.breaker, (old, new)).inc()
    except Exception:  # noqa: BLE001
        log.debug("metrics: breaker_transition failed", exc_info=True)


def exported_names(registry: Any = None) -> set[str]:
    """Every sample name the worker metrics expose (with _total, _bucket, _count, _sum...).

    Built on a throwaway registry when none is given, so any process can ask.
    """
    if registry is None:
        registry = CollectorRegistry()
        _Metrics(registry, per_account=False)
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
    names: set[str] = set()
    for family in registry.collect():  # a labelled metric has no sample until first used: go by type
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def serve(settings: Settings | None = None, *, prefork: bool = False) -> int | None:
    """Serve /metrics for this worker on the first free port of WEBHOOKS_METRICS_PORT, at
    WEBHOOKS_METRICS_ADDRESS, in a daemon thread. Returns the port, or None when off/refused."""
    s = settings or get_settings()
    if not s.metrics_ports:
        return None
    registry: Any = REGISTRY
    if prefork:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            log.error("metrics: not served: a prefork worker's children count separately; set "
                      "PROMETHEUS_MULTIPROC_DIR to an empty directory before starting it, or use -P threads")
            return None
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    _get()
    for port in s.metrics_ports:
        try:
            start_http_server(port, addr=s.metrics_address, registry=registry)
        except OSError:
            continue
        log.info("metrics: serving /metrics on %s:%d", s.metrics_address, port)
        return port
    log.error("metrics: not served: no free port in WEBHOOKS_METRICS_PORT at %s", s.metrics_address)
    return None
