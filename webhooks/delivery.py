"""One delivery attempt, and the decision that follows it. Pure of Celery.

``attempt(delivery_id)`` loads the delivery, its subscription and its event, maps and
signs the body, sends it through the transport, logs the attempt, and returns an
Outcome saying what happens next. The Celery task only translates the Outcome:
delivered/discarded/parked -> return, retry/wait -> Celery retry with ``delay_s``,
dead -> raise (so on_failure and task_failure write the dead letter).
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from . import health, listening, metrics, mover, records, signing, stats, subscriptions
from .breaker import BreakerConfig, CircuitBreaker
from .connection import get_redis
from .deadletters import release_payload
from .errors import DeliveryError, EncryptionError, ValidationError
from .keys import K
from .limits import EndpointSlots, RateLimiter
from .policy import RetrySchedule, Verdict, classify, next_delay, parse_retry_after, split_tier
from .producer import _transform_for
from .settings import Settings, get_settings
from .transport import HttpTransport, OutgoingRequest, Transport

__all__ = ["Outcome", "attempt", "breaker_config", "get_transport", "set_transport", "schedule_for"]

log = logging.getLogger("webhooks.delivery")

_transport: Transport | None = None
_transport_lock = threading.Lock()
_rng = random.SystemRandom()


@dataclass(frozen=True)
class Outcome:
    """What happens next to a delivery.

    action: "delivered" | "retry" (after delay_s, spends a schedule step) | "wait" (not
    attempted: breaker open, endpoint busy or rate-limited; after delay_s) | "park"
    (long-tier retry parked in Redis) | "dead" | "discarded" (no longer wanted) | "skip"
    (already ended: a re-delivered message).
    """

    action: str
    delivery_id: str
    delay_s: float | None = None
    reason: str | None = None
    status: int | None = None
    error: str | None = None


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


def _discard(delivery_id: str, rec: dict[str, str], reason: str) -> Outcome:
    pipe = get_redis().pipeline(transaction=True)
    records.update(delivery_id, pipe=pipe, status="discarded", reason=reason)
    pipe.zrem(K.inflight(), delivery_id)
    pipe.execute()
    release_payload(rec["evt"])
    metrics.delivery_ended("discarded", None, time.time(), account=rec.get("account"))
    log.info("delivery %s discarded: %s", delivery_id, reason)
    return Outcome("discarded", delivery_id, reason=reason)


def _build(sub: subscriptions.Subscription, envelope_raw: bytes) -> tuple[bytes, dict[str, str]]:
    if not sub.transform:
        return envelope_raw, {}
    t = _transform_for(sub)
    envelope = json.loads(envelope_raw)
    return t.body(envelope), dict(t.headers())


def attempt(delivery_id: str, *, now: float | None = None) -> Outcome:
    """Make one attempt at ``delivery_id`` and decide what follows. See Outcome."""
    settings = get_settings()
    r = get_redis()
    rec = records.load(delivery_id, touch_it=True)
    if rec is None:
        log.warning("delivery %s is unknown or expired; dropped", delivery_id)
        return Outcome("skip", delivery_id, reason="unknown delivery")
    if rec.get("status") in records.ENDED:
        return Outcome("skip", delivery_id, reason=f"already {rec['status']}")
    account, sub_id = rec["account"], rec["sub"]
    pipe = r.pipeline(transaction=False)
    pipe.hget(K.subs(account), sub_id)
    pipe.get(K.event(rec["evt"]))
    raw_sub, body_raw = pipe.execute()
    if raw_sub is None:
        return _discard(delivery_id, rec, "subscription deleted")
    sub = subscriptions.Subscription.from_json(raw_sub)
    if not sub.enabled:
        return _discard(delivery_id, rec, f"subscription disabled: {sub.disabled_reason or 'by operator'}")
    if body_raw is None:
        return _discard(delivery_id, rec, "event payload expired")

    endpoint = sub.id
    if sub.rate_limit_per_s:
        wait_s = RateLimiter(r).reserve(endpoint, sub.rate_limit_per_s, holder=delivery_id)
        if wait_s > 0:
            return _wait(delivery_id, wait_s, "rate limited", settings)
    slots = EndpointSlots(r)
    lease_s = settings.total_timeout_s + 30
    if not slots.acquire(endpoint, delivery_id, settings.endpoint_concurrency, lease_s):
        return _wait_for_slot(delivery_id, endpoint, slots, settings.endpoint_concurrency, lease_s)
    try:
        # Asked last: a half-open breaker hands its one probe to a delivery that can go now.
        breaker = CircuitBreaker(r, breaker_config(settings))
        allowed, wait_s = breaker.allow(endpoint)
        if not allowed:
            return _wait(delivery_id, max(wait_s, 1.0), "circuit open", settings)
        return _send(delivery_id, rec, sub, body_raw, breaker, settings, now)
    finally:
        slots.release(endpoint, delivery_id)
        mover.wake_one(endpoint)


def _wait_for_slot(delivery_id: str, endpoint: str, slots: Any, limit: int, lease_s: float) -> Outcome:
    # Every slot is taken: park until a holder releases one and wakes us (oldest waiter
    # first), instead of polling. A slow or hanging endpoint's queued deliveries then cost
    # one task run each while its slots are held, not one per poll. The fallback time is
    # the slot lease: a holder killed mid-attempt wakes nobody, but its lease ends by then.
    now = time.time()
    pipe = get_redis().pipeline(transaction=True)
    records.update(delivery_id, pipe=pipe, status="waiting", reason="endpoint busy", due=repr(now + lease_s))
    pipe.zadd(K.parked(), {delivery_id: now + lease_s})
    pipe.zadd(K.slot_waiters(endpoint), {delivery_id: now})
    pipe.expire(K.slot_waiters(endpoint), int(lease_s) + 60)
    records.touch(delivery_id, after_s=lease_s, pipe=pipe)
    pipe.execute()
    # Registered first, checked second: a slot released before we registered woke nobody,
    # so we wake the oldest waiter ourselves.
    if slots.in_flight(endpoint) < limit:
        mover.wake_one(endpoint)
    return Outcome("park", delivery_id, delay_s=lease_s, reason="endpoint busy")


def _wait(delivery_id: str, delay_s: float, reason: str, settings: Settings) -> Outcome:
    if split_tier(delay_s, settings.max_countdown_s) == "park":
        return _park(delivery_id, delay_s, reason, status="parked")
    pipe = get_redis().pipeline(transaction=True)
    records.update(delivery_id, pipe=pipe, status="waiting", reason=reason)
    records.touch(delivery_id, after_s=delay_s, pipe=pipe)
    pipe.execute()
    return Outcome("wait", delivery_id, delay_s=delay_s, reason=reason)


def _park(delivery_id: str, delay_s: float, reason: str, status: str = "parked") -> Outcome:
    pipe = get_redis().pipeline(transaction=True)
    records.update(delivery_id, pipe=pipe, status=status, reason=reason, due=repr(time.time() + delay_s))
    pipe.zadd(K.parked(), {delivery_id: time.time() + delay_s})
    records.touch(delivery_id, after_s=delay_s, pipe=pipe)
    pipe.execute()
    return Outcome("park", delivery_id, delay_s=delay_s, reason=reason)


def _send(
    delivery_id: str,
    rec: dict[str, str],
    sub: subscriptions.Subscription,
    body_raw: bytes,
    breaker: Any,
    settings: Settings,
    now: float | None,
) -> Outcome:
    started = time.time()
    number = int(rec.get("attempts") or 0) + 1
    status: int | None = None
    error_kind: str | None = None
    error_msg: str | None = None
    response_text: str | None = None
    retry_after: float | None = None
    try:
        body, extra_headers = _build(sub, body_raw)
        headers = {**extra_headers, **signing.signed_headers(sub.signing_secrets(), delivery_id, body, now=now)}
        headers["content-type"] = "application/json"
        resp = get_transport().send(OutgoingRequest(url=sub.url, body=body, headers=headers,
                                                    local_target=listening.local_target(sub)))
        status = resp.status
        response_text = resp.body[: settings.log_response_bytes].decode("utf-8", "replace")
        retry_after = parse_retry_after(resp.headers.get("retry-after"), now=time.time())
        verdict = classify(status)
        if verdict is not Verdict.DELIVERED:
            error_kind = f"http_{status}"
            error_msg = f"endpoint answered {status}"
    except DeliveryError as exc:
        error_kind, error_msg = exc.kind, str(exc)
        verdict = classify(None, exc.kind)
    except ValidationError as exc:  # TransformError: the mapping or template failed on this event
        error_kind, error_msg = "transform", f"mapping failed: {exc}"
        verdict = Verdict.PERMANENT
    except EncryptionError as exc:
        error_kind, error_msg = "encryption", str(exc)
        verdict = Verdict.PERMANENT
    duration_ms = (time.time() - started) * 1000
    metrics.attempt_finished(metrics.result_class(status, error_kind), duration_ms / 1000, account=sub.account)
    ok = verdict is Verdict.DELIVERED
    pipe = get_redis().pipeline(transaction=False)
    records.log_attempt(records.Attempt(
        delivery_id=delivery_id, subscription_id=sub.id, number=number, at=started,
        duration_ms=round(duration_ms, 2), status=status, error=error_kind, verdict=verdict.name.lower(),
        response=response_text,
    ), pipe=pipe)
    stats.record(sub.id, ok, duration_ms, error_kind, pipe=pipe)
    pipe.execute()
    if error_kind not in ("url_refused", "transform", "encryption"):
        transition = breaker.record(sub.id, ok)
        metrics.breaker_transition(transition.old, transition.new)
        health.after_attempt(sub, ok, transition, error_msg, settings)
    log.info(
        "delivery %s attempt %d to %s: %s in %.0f ms",
        delivery_id, number, sub.id, status if status is not None else error_kind, duration_ms,
    )
    if verdict is Verdict.DELIVERED:
        return _delivered(delivery_id, rec, status)
    records.update(delivery_id, last_status=status, last_error=error_msg)
    if verdict is Verdict.GONE:
        subscriptions.disable(sub.account, sub.id, reason="endpoint answered 410 Gone", actor="webhooks")
        return _dead(delivery_id, "gone", status, error_msg)
    if verdict is Verdict.PERMANENT:
        return _dead(delivery_id, error_kind or "permanent", status, error_msg)
    retries_done = int(rec.get("retries") or 0)
    delay = next_delay(schedule_for(sub, settings), retries_done, verdict, retry_after_s=retry_after, rng=_rng)
    if delay is None:
        return _dead(delivery_id, "exhausted", status, error_msg)
    get_redis().hincrby(K.delivery(delivery_id), "retries", 1)
    metrics.retry_scheduled("parked" if split_tier(delay, settings.max_countdown_s) == "park" else "countdown",
                            account=sub.account)
    if split_tier(delay, settings.max_countdown_s) == "park":
        return _park(delivery_id, delay, error_msg or "retry")
    pipe = get_redis().pipeline(transaction=True)
    records.update(delivery_id, pipe=pipe, status="retrying", due=repr(time.time() + delay))
    records.touch(delivery_id, after_s=delay, pipe=pipe)
    pipe.execute()
    return Outcome("retry", delivery_id, delay_s=delay, reason=error_kind, status=status, error=error_msg)


def _dead(delivery_id: str, reason: str, status: int | None, error: str | None) -> Outcome:
    # The reason is kept in the record: the dead letter is written from on_failure or the
    # task_failure signal, which see only a (re-built) exception.
    records.update(delivery_id, reason=reason)
    return Outcome("dead", delivery_id, reason=reason, status=status, error=error)


_DELIVERED_LUA = """
-- KEYS: delivery record, in-flight set, event, event refs; ARGV: status code, now, delivery id.
-- A second success of the same delivery (at-least-once: a message re-delivered after a lost
-- ack) is counted, not re-ended. The first releases its hold on the payload (dropped after
-- the last delivery of the event ends).
redis.call('ZREM', KEYS[2], ARGV[3])
if redis.call('HGET', KEYS[1], 'status') == 'delivered' then
  redis.call('HINCRBY', KEYS[1], 'duplicates', 1)
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'delivered', 'last_status', ARGV[1], 'last_error', '', 'reason', '',
           'updated', ARGV[2], 'delivered_at', ARGV[2])
if redis.call('DECR', KEYS[4]) <= 0 then redis.call('DEL', KEYS[3], KEYS[4]) end
return 1
"""


def _delivered(delivery_id: str, rec: dict[str, str], status: int | None) -> Outcome:
    first = get_redis().register_script(_DELIVERED_LUA)(
        keys=[K.delivery(delivery_id), K.inflight(), K.event(rec["evt"]), K.event_refs(rec["evt"])],
        args=[str(status), repr(time.time()), delivery_id],
    )
    if first:  # a duplicate success (re-delivered message) is not a second delivery
        metrics.delivery_ended("delivered", float(rec["created"]) if rec.get("created") else None, time.time(),
                               account=rec.get("account"))
    return Outcome("delivered", delivery_id, status=status)
