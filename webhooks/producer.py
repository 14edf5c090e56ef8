"""publish(): validate, store the event once, enqueue one task per matching subscription.

Cost: one Redis call, the state machine's atomic ``publish`` script, which writes the payload,
the delivery records and every task message (built in the script): all of
it lands or none of it, nothing is half-enqueued. The event is matched against this process's
copy of the account's subscriptions (``webhooks.subcache``); the script refuses a copy that is
no longer current and returns the stored records instead, and publish matches again and calls
again: a second call after every change to the account's subscriptions, and on an account's
first publish in a process. The rest is Python: marshmallow's validation is the largest part.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import redis

from . import events, subcache
from .errors import PublishError, ValidationError
from .ids import check_account, new_id, new_ids
from .settings import Settings, get_settings
from .state import SubscriptionsChanged, get_store
from .subscriptions import Subscription, readable

__all__ = ["PublishedEvent", "publish", "enqueue_envelope"]

log = logging.getLogger("webhooks.producer")

@dataclass(frozen=True)
class PublishedEvent:
    """What publish() did: the event id, and how many deliveries it enqueued."""

    id: str
    type: str
    account: str
    deliveries: int
    delivery_ids: tuple[str, ...] = field(default=(), repr=False)
    duplicate: bool = False
    spooled: bool = False


_compiled_lock = threading.Lock()
_compiled: "OrderedDict[tuple[str, float], Any]" = OrderedDict()


def _transform_for(sub: Subscription) -> Any:
    """The compiled transform of ``sub`` (cached by id and update time), or None."""
    if not sub.transform:
        return None
    key = (sub.id, sub.updated_at)
    with _compiled_lock:
        hit = _compiled.get(key)
        if hit is not None:
            _compiled.move_to_end(key)
            return hit
    from .transform import compile_spec

    compiled = compile_spec(sub.transform)
    with _compiled_lock:
        _compiled[key] = compiled
        while len(_compiled) > 4096:
            _compiled.popitem(last=False)
    return compiled


def _passes_filter(sub: Subscription, envelope: dict[str, Any], budget: Any) -> bool:
    """Whether the filter of ``sub`` (enabled, wanting this type: ``subcache.Known.candidates``)
    lets ``envelope`` through. Filters run on the account's shared ``budget`` (a
    ``FilterBudget``); past it, the subscription is enqueued unfiltered."""
    try:
        t = _transform_for(sub)
    except ValidationError:
        # A stored spec that no longer compiles (limits changed since it was saved): enqueue,
        # so the delivery dead-letters with reason "transform" where an operator sees it,
        # rather than silently dropping events or failing the whole account's publish.
        log.error("subscription %s of account %s has a transform that no longer compiles", sub.id, sub.account)
        return True
    if t is None:
        return True
    decided = t.decide(envelope, budget)
    return True if decided is None else decided


def _match_all(account: str, candidates: tuple[Subscription, ...], envelope: dict[str, Any]) -> list[Subscription]:
    """The ``candidates`` (oldest first) that get ``envelope``; their filters share one budget."""
    from .transform.filters import FilterBudget

    budget = FilterBudget()
    matched = [sub for sub in candidates if _passes_filter(sub, envelope, budget)]
    if budget.unfiltered:
        log.warning(
            "account %s: filters spent the shared work budget of one publish; %d subscription(s) got event %s unfiltered",
            account, budget.unfiltered, envelope["id"],
        )
    return matched


def _payload_ttl_s(s: Settings) -> int:
    # The payload must outlive the whole retry schedule and then its dead letters.
    return int(sum(s.retry_schedule_s) * (1 + s.retry_jitter) + s.dead_letter_retention_s + 3600)


# Calls of the enqueue script per publish at most: one with the cached subscriptions, and,
# each time it answers that they changed, one more with the records it returned.
_TRIES = 3


class SubscriptionsKeptChanging(redis.RedisError):
    """The account's subscriptions changed before every try of one publish (nothing enqueued)."""


def enqueue_envelope(account: str, envelope: dict[str, Any], body: bytes) -> PublishedEvent:
    """Match and enqueue an already validated envelope. Raises redis errors as they come."""
    store = get_store()
    event_id, event_type = envelope["id"], envelope["type"]
    known = subcache.get(account)
    token = new_id("pub")
    for _ in range(_TRIES):
        matched = _match_all(account, known.candidates(event_type), envelope) if known else []
        deliveries = list(zip(new_ids("msg", len(matched)), (sub.id for sub in matched)))
        try:
            out = store.publish(account, event_id, event_type, body, _payload_ttl_s(store.settings), deliveries,
                                token, known.version if known else "")
        except redis.RedisError as exc:
            # a call with no deliveries writes nothing an event needs: it cannot have enqueued
            raise _ScriptInFlight(exc, maybe_sent=bool(deliveries) and _maybe_sent(exc)) from exc
        if isinstance(out, SubscriptionsChanged):
            known = subcache.remember(account, out.version, readable(account, out.records))
            continue
        if out is None:
            return PublishedEvent(event_id, event_type, account, 0, duplicate=True)
        return PublishedEvent(event_id, event_type, account, out, tuple(d[0] for d in deliveries))
    raise _ScriptInFlight(SubscriptionsKeptChanging(
        f"the subscriptions of account {account} changed before each of {_TRIES} tries"), maybe_sent=False)


class _ScriptInFlight(redis.RedisError):
    """A Redis error while the enqueue script was being sent or run."""

    def __init__(self, cause: redis.RedisError, *, maybe_sent: bool) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.maybe_sent = maybe_sent


def _maybe_sent(exc: redis.RedisError) -> bool:
    """False only when the error came while connecting (the command never left); a timeout
    or a connection lost while waiting for the answer may follow a script that ran."""
    text = str(exc)
    return not ("connecting to" in text or "Timeout connecting" in text)


def publish(account: str, event_type: str, data: Any, *, event_id: str | None = None) -> PublishedEvent:
    """Publish one chat event to every matching subscription of ``account``.

    Validates ``data`` against the event type's schema, stores the event once and
    enqueues one delivery task per matching subscription (ids only in the task).
    Call it after your database transaction commits. Publishing the same ``event_id``
    twice in one account enqueues once (the second returns ``duplicate=True``); event ids
    belong to their account, so the same id in two accounts is two events.

    Raises:
        ValidationError / UnknownEventType / PayloadTooLarge: bad input; nothing enqueued.
        PublishError: Redis did not answer within WEBHOOKS_PUBLISH_TIMEOUT_S (or, with
            WEBHOOKS_OUTBOX set, the event is spooled instead). ``error.event_id`` is the
            event's id (generated before the call when you gave none) and
            ``error.maybe_enqueued`` says whether the enqueue may have happened (Redis slow
            rather than down): publish again with ``event_id=error.event_id`` and it is
            enqueued exactly once either way.
    Returns:
        PublishedEvent with the event id and the number of deliveries enqueued.
    """
    check_account(account)
    envelope = events.build_envelope(event_type, data, event_id=event_id)
    body = events.serialize(envelope)
    settings = get_settings()
    events.check_size(body, settings.max_payload_bytes)
    if settings.outbox_path:
        from . import outboxing

        behind = outboxing.spool_if_backlog(account, envelope)
        if behind is not None:
            return behind
    try:
        return enqueue_envelope(account, envelope, body)
    except redis.RedisError as exc:
        from . import outboxing

        spooled = outboxing.spool_if_enabled(account, envelope)
        if spooled is not None:
            return spooled
        maybe = isinstance(exc, _ScriptInFlight) and exc.maybe_sent
        if isinstance(exc, _ScriptInFlight):
            exc = exc.cause
        what = (f"it may have been enqueued; publish again with event_id={envelope['id']!r} to be sure it is "
                "enqueued exactly once") if maybe else "nothing was enqueued"
        raise PublishError(
            f"Redis did not answer in time to publish {envelope['type']} {envelope['id']} for account {account} "
            f"({type(exc).__name__}): {what}", event_id=envelope["id"], maybe_enqueued=maybe,
        ) from None
