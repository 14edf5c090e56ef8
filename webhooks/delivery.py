"""One delivery attempt, and the decision that follows it. Pure of Celery.

``attempt(delivery_id, store=, transport=, clock=)`` asks the state machine to claim the
delivery (one Redis call: record, subscription, payload, rate limit, endpoint slot,
breaker), maps and signs the body, sends it through the transport, decides what follows
(policy.classify / next_delay) and settles it (one Redis call: attempt log, health figures,
breaker, status transition, payload and slot release, waking one waiter). Operator alerts
and auto-disable run after the slot is given back. The Celery task only translates the
Outcome: delivered/discarded/parked/skip -> return, retry/wait -> Celery retry with
``delay_s``, dead -> raise (the dead letter is already written).
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from . import health, listening, metrics, signing, subscriptions
from .breaker import BreakerConfig
from .errors import DeliveryError, EncryptionError, ValidationError
from .policy import RetrySchedule, Verdict, classify, next_delay, parse_retry_after, split_tier
from .producer import _transform_for
from .settings import Settings, get_settings
from .state import Attempt, BrokerMessage, Claim, DeliveryStore, Settled, get_store
from .transport import HttpTransport, OutgoingRequest, Transport

__all__ = ["Outcome", "attempt", "deliver", "breaker_config", "get_transport", "set_transport", "schedule_for"]

log = logging.getLogger("webhooks.delivery")

_transport: Transport | None = None
_transport_lock = threading.Lock()
_rng = random.SystemRandom()
# Errors that are not the endpoint's doing: they feed neither its breaker nor its health.
_NOT_THE_ENDPOINT = frozenset({"url_refused", "transform", "encryption"})


@dataclass(frozen=True)
class Outcome:
    """What happens next to a delivery.

    action: "delivered" | "retry" (after delay_s, spends a schedule step) | "wait" (not
    attempted: breaker open or rate-limited; after delay_s) | "park" (waits in Redis: a
    long-tier retry, or every slot of the endpoint taken) | "dead" (dead letter written) |
    "discarded" (no longer wanted) | "skip" (unknown, or already ended: a re-delivered message).
    ``status``/``error``/``kind``: the attempt's HTTP status, error text and class.
    """

    action: str
    delivery_id: str
    delay_s: float | None = None
    reason: str | None = None
    status: int | None = None
    error: str | None = None
    kind: str | None = None
    duration_s: float | None = None
    created: float | None = None


def get_transport() -> Transport:
    """The process-wide transport (one keep-alive pool per endpoint address)."""
    global _transport
    if _transport is None:
        with _transport_lock:
            if _transport is None:
                _transport = HttpTransport(get_settings())
    return _transport


def set_transport(transport: Transport | None) -> None:
    """Replace the transport (tests use a FakeTransport)."""
    global _transport
    _transport = transport


def schedule_for(sub: subscriptions.Subscription, settings: Settings) -> RetrySchedule:
    """The subscription's own schedule, else the configured one."""
    if sub.retry_schedule:
        return RetrySchedule.parse(sub.retry_schedule, jitter=settings.retry_jitter)
    return RetrySchedule(tuple(settings.retry_schedule_s), jitter=settings.retry_jitter)


def breaker_config(settings: Settings) -> BreakerConfig:
    """The circuit breaker's thresholds from WEBHOOKS_BREAKER_* settings."""
    return BreakerConfig(
        window_s=settings.breaker_window_s,
        min_requests=settings.breaker_min_requests,
        failure_ratio=settings.breaker_failure_ratio,
        cooldown_s=settings.breaker_cooldown_s,
    )


@dataclass(frozen=True)
class _Endpoint:
    """A subscription decoded once per process per version, its secrets unsealed."""

    sub: subscriptions.Subscription
    current: str
    previous: tuple[tuple[str, float], ...]
    schedule: RetrySchedule

    def secrets(self, now: float) -> list[str]:
        return [self.current, *(s for s, until in self.previous if until > now)]


_endpoints_lock = threading.Lock()
_endpoints: "OrderedDict[tuple[bytes, str | None], _Endpoint]" = OrderedDict()
_ENDPOINTS_KEPT = 4096


def _endpoint(raw: bytes, settings: Settings) -> _Endpoint:
    """The decoded subscription for its stored JSON (which changes with every update, so the
    JSON itself is the version). Raises EncryptionError when a secret cannot be unsealed."""
    key = (raw, settings.encryption_key)
    with _endpoints_lock:
        hit = _endpoints.get(key)
        if hit is not None:
            _endpoints.move_to_end(key)
            return hit
    from . import secretbox

    sub = subscriptions.Subscription.from_json(raw)
    k = settings.encryption_key
    ep = _Endpoint(sub, secretbox.unseal(sub.secret, k),
                   tuple((secretbox.unseal(s, k), until) for s, until in sub.previous_secrets),
                   schedule_for(sub, settings))
    with _endpoints_lock:
        _endpoints[key] = ep
        while len(_endpoints) > _ENDPOINTS_KEPT:
            _endpoints.popitem(last=False)
    return ep


def _build(sub: subscriptions.Subscription, envelope_raw: bytes) -> tuple[bytes, dict[str, str]]:
    if not sub.transform:
        return envelope_raw, {}
    t = _transform_for(sub)
    envelope = json.loads(envelope_raw)
    return t.body(envelope), dict(t.headers())


def attempt(
    delivery_id: str,
    *,
    store: DeliveryStore,
    transport: Transport,
    clock: Callable[[], float] = time.time,
    rng: random.Random = _rng,
    broker: BrokerMessage | None = None,
    claimed: Claim | None = None,
) -> Outcome:
    """Make one attempt at ``delivery_id`` and decide what follows. See Outcome.

    Two Redis calls (``store.claim`` and ``store.settle``) whatever happens; Redis errors
    propagate (the task requeues the message). ``broker``: the message this attempt runs
    from, acked inside ``settle`` when the attempt gets that far (see BrokerMessage).
    ``claimed``: the claim already made for this attempt (the worker claims as it takes the
    message: workers.transport), instead of making one here."""
    settings = store.settings
    claim = claimed if claimed is not None else store.claim(delivery_id)
    if claim.action == "skip":
        log.info("delivery %s skipped: %s", delivery_id, claim.reason)
        return Outcome("skip", delivery_id, reason=claim.reason)
    if claim.action == "discard":
        log.info("delivery %s discarded: %s", delivery_id, claim.reason)
        metrics.delivery_ended("discarded", None, clock(), account=claim.account or None)
        return Outcome("discarded", delivery_id, reason=claim.reason)
    if claim.action in ("wait", "park"):
        return Outcome(claim.action, delivery_id, delay_s=claim.delay_s, reason=claim.reason)

    assert claim.subscription is not None and claim.payload is not None
    started = clock()
    number = claim.attempts + 1
    status: int | None = None
    kind: str | None = None
    error: str | None = None
    response_text: str | None = None
    retry_after: float | None = None
    sub: subscriptions.Subscription | None = None
    schedule: RetrySchedule | None = None
    try:
        ep = _endpoint(claim.subscription, settings)
        sub, schedule = ep.sub, ep.schedule
        body, extra_headers = _build(sub, claim.payload)
        headers = {**extra_headers, **signing.signed_headers(ep.secrets(started), delivery_id, body, now=started)}
        headers["content-type"] = "application/json"
        resp = transport.send(OutgoingRequest(url=sub.url, body=body, headers=headers,
                                              local_target=listening.local_target(sub)))
        status = resp.status
        response_text = resp.body[: settings.log_response_bytes].decode("utf-8", "replace")
        retry_after = parse_retry_after(resp.headers.get("retry-after"), now=clock())
        verdict = classify(status)
        if verdict is not Verdict.DELIVERED:
            kind, error = f"http_{status}", f"endpoint answered {status}"
    except DeliveryError as exc:
        kind, error = exc.kind, str(exc)
        verdict = classify(None, exc.kind)
    except ValidationError as exc:  # TransformError: the mapping or template failed on this event
        kind, error = "transform", f"mapping failed: {exc}"
        verdict = Verdict.PERMANENT
    except EncryptionError as exc:
        kind, error = "encryption", str(exc)
        verdict = Verdict.PERMANENT
    duration_s = clock() - started

    action, reason, delay = _decide(verdict, kind, schedule, claim.retries, retry_after, settings, rng)
    record = Attempt(delivery_id=delivery_id, subscription_id=sub.id if sub else "", number=number, at=started,
                     duration_ms=round(duration_s * 1000, 2), status=status, error=kind,
                     verdict=verdict.name.lower(), response=response_text)
    settled = store.settle(claim, record, action=action, ok=verdict is Verdict.DELIVERED,
                           counts=kind not in _NOT_THE_ENDPOINT, error_kind=kind, error=error, reason=reason,
                           delay_s=delay, broker=broker)
    log.info("delivery %s attempt %d: %s in %.0f ms -> %s", delivery_id, number,
             status if status is not None else kind, duration_s * 1000, settled.result)
    _count(claim, status, kind, duration_s, settled, clock())
    if sub is not None:
        _after(sub, verdict, settled, error, settings)
    out_action = {"delivered": "delivered", "duplicate": "delivered", "retry": "retry", "park": "park"}.get(
        settled.result, "dead")
    return Outcome(out_action, delivery_id, delay_s=delay, reason=reason or kind, status=status, error=error,
                   kind=kind, duration_s=duration_s, created=claim.created)


def _decide(verdict: Verdict, kind: str | None, schedule: RetrySchedule | None, retries_done: int,
            retry_after: float | None, settings: Settings, rng: random.Random) -> tuple[str, str | None, float | None]:
    """(settle action, reason, delay) for an attempt's verdict."""
    if verdict is Verdict.DELIVERED:
        return "delivered", None, None
    if verdict is Verdict.GONE:
        return "dead", "gone", None
    if verdict is Verdict.PERMANENT or schedule is None:
        return "dead", kind or "permanent", None
    delay = next_delay(schedule, retries_done, verdict, retry_after_s=retry_after, rng=rng)
    if delay is None:
        return "dead", "exhausted", None
    tier = "retry" if split_tier(delay, settings.max_countdown_s) == "countdown" else "park"
    return tier, kind, delay


def _count(claim: Claim, status: int | None, kind: str | None, duration_s: float, settled: Settled,
           now: float) -> None:
    """The attempt and what it settled, in the worker's Prometheus metrics (webhooks.metrics).
    A duplicate success or a second dead letter of one delivery (a re-delivered message) ends
    nothing new."""
    account = claim.account or None
    metrics.attempt_finished(metrics.result_class(status, kind), duration_s, account=account)
    metrics.breaker_transition(settled.breaker_before, settled.breaker_after)
    if settled.result in ("retry", "park"):
        metrics.retry_scheduled("countdown" if settled.result == "retry" else "parked", account=account)
    elif settled.result == "delivered":
        metrics.delivery_ended("delivered", claim.created, now, account=account)
    elif settled.result == "dead":
        metrics.delivery_ended("dead", None, now, account=account)


def _after(sub: subscriptions.Subscription, verdict: Verdict, settled: Settled, error: str | None,
           settings: Settings) -> None:
    """Slow, rare side effects, run once the endpoint's slot is back: disabling a subscription
    (410 Gone, or failing for WEBHOOKS_DISABLE_AFTER_S) and operator alerts."""
    if verdict is Verdict.GONE:
        subscriptions.disable(sub.account, sub.id, reason="endpoint answered 410 Gone", actor="webhooks")
    before, after = settled.breaker_before, settled.breaker_after
    if before == "closed" and after == "open":
        health.alert("endpoint.failing", sub, {"error": error}, settings)
    elif before != "closed" and after == "closed":
        health.alert("endpoint.recovered", sub, {}, settings)
    if settled.disable:
        health.disable_failing(sub, settings)


def deliver(delivery_id: str, broker: BrokerMessage | None = None, claimed: Claim | None = None) -> Outcome:
    """``attempt`` with the process's store and transport: what the Celery task calls."""
    return attempt(delivery_id, store=get_store(), transport=get_transport(), broker=broker, claimed=claimed)
