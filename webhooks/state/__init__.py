"""The delivery state machine: its statuses, every transition as one named operation, and
the Lua behind them (``lua/*.lua``, loaded once; see ``scripts``).

    pending ──claim──▶ attempting ──settle──▶ delivered | dead | retrying | parked
       ▲                   │ claim: rate limit / breaker ──▶ waiting (countdown) | parked
       │                   │ claim: every slot taken ─────▶ waiting (woken by a release)
       │                   │ claim: subscription gone, disabled or payload expired ──▶ discarded
    retrying ◀── move_due / wake / resend (reconciler) ── parked / waiting
    dead ──replay──▶ pending            dead ──purge──▶ discarded

Nobody else writes a delivery's status. An attempt talks to Redis twice: ``claim`` before
the request and ``settle`` after it. Keys come from ``webhooks.keys.K`` and are passed as
KEYS, except where a script learns an id only from what it reads: ``claim`` finds the
account, subscription and event in the record, and a release wakes a delivery it finds in
the waiters' set; those keys come from the ``key_*`` Lua functions that ``scripts.prelude``
generates from ``K``.
"""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

from ..enqueue import DELIVER_TASK, DELIVERIES_QUEUE, RETRIES_QUEUE, task_message
from ..keys import K
from ..settings import Settings
from .scripts import run

__all__ = [
    "STATUSES", "ENDED", "IN_PROGRESS", "Attempt", "BrokerMessage", "Claim", "Settled", "TakenMessage", "SubscriptionsChanged", "DeliveryStore",
    "LATENCIES_KEPT",
]

STATUSES = ("pending", "attempting", "waiting", "retrying", "parked", "delivered", "dead", "discarded")
ENDED = frozenset({"delivered", "dead", "discarded"})
IN_PROGRESS = frozenset(STATUSES) - ENDED
LATENCIES_KEPT = 1000
BREAKER_IDLE_TTL_S = 86400
RATE_BOOKING_GRACE_S = 300.0
# The breaker's probe lease (a probe whose worker died is replaced after it) and the longest
# wait told to callers while a probe is out: webhooks.breaker.BreakerConfig's defaults.
PROBE_TIMEOUT_S = 60.0
PROBE_WAIT_S = 5.0


@dataclass(frozen=True)
class Attempt:
    """One attempt: when, how long, and how it ended (never the request body or headers)."""

    delivery_id: str
    subscription_id: str
    number: int
    at: float
    duration_ms: float
    status: int | None
    error: str | None
    verdict: str
    response: str | None = None


@dataclass(frozen=True)
class Claim:
    """What ``claim`` decided. ``action``: "go" (with the subscription JSON and the payload),
    "wait" (a countdown of ``delay_s``), "park" (waits in Redis), "discard" or "skip"."""

    action: str
    reason: str | None = None
    delay_s: float | None = None
    subscription: bytes | None = None
    payload: bytes | None = None
    retries: int = 0
    attempts: int = 0
    created: float | None = None
    account: str = ""
    subscription_id: str = ""
    event_id: str = ""
    version: str | None = None
    event_type: str = ""


@dataclass
class BrokerMessage:
    """The broker message an attempt runs from, as kombu's Redis transport keeps it until the
    ack: ``tag`` in the sorted set ``index_key`` and the hash ``hash_key``. ``settle`` removes
    it there and sets ``done`` when it found it (a broker on another Redis, or a message
    already restored, is not found: the worker acks as usual); the worker's ack then skips
    its own round trip (``workers.transport``)."""

    tag: str
    index_key: str
    hash_key: str
    done: bool = False


@dataclass(frozen=True)
class TakenMessage:
    """A broker message a worker is taking, as kombu's Redis transport records it until the
    ack (QoS.append): ``tag`` scored ``at`` in the sorted set ``index_key``, ``entry`` (its
    JSON [message, exchange, routing key]) under ``tag`` in the hash ``hash_key``. ``claim``
    writes both with the claim, so taking a message and claiming its delivery cost one round
    trip (``workers.transport``)."""

    tag: str
    index_key: str
    hash_key: str
    entry: str
    at: float


@dataclass(frozen=True)
class Settled:
    """What ``settle`` did: ``result`` ("delivered", "duplicate", "retry", "park", "dead",
    "dead_again", "gone": the record vanished), the breaker's state before and after,
    whether the endpoint has now failed long enough to be disabled, and the id of the
    waiting delivery this release woke (or None)."""

    result: str
    breaker_before: str
    breaker_after: str
    disable: bool
    woken: str | None


@dataclass(frozen=True)
class SubscriptionsChanged:
    """``publish`` refused: the account's subscriptions are not the version the caller matched
    against. ``version`` is the current one and ``records`` the stored hash (id -> JSON)."""

    version: str
    records: dict[bytes, bytes]


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _num(v: float) -> str:
    return repr(float(v))


class DeliveryStore:
    """The state machine on one Redis client, for one set of settings, timed by ``clock``."""

    def __init__(self, redis: Any, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.settings = settings
        self.clock = clock
        s = settings
        self._lease_ms = str(math.ceil(self.slot_lease_s * 1000))
        self._claim_tail = [_num(s.progress_deadline_s), _num(s.max_countdown_s)]
        self._claim_tail2 = [_num(PROBE_WAIT_S), str(BREAKER_IDLE_TTL_S), _num(RATE_BOOKING_GRACE_S)]
        self._settle_tail = [str(s.attempts_per_delivery), str(s.attempt_retention_s)]
        self._settle_breaker = [_num(s.breaker_window_s), str(s.breaker_min_requests), _num(s.breaker_failure_ratio)]
        self._settle_tail2 = [str(BREAKER_IDLE_TTL_S), _num(s.disable_after_s), str(s.dead_letter_retention_s),
                              str(LATENCIES_KEPT)]

    @property
    def slot_lease_s(self) -> float:
        """How long an endpoint slot is held at most: one attempt's deadline plus margin."""
        return self.settings.total_timeout_s + 30

    # -- publish ------------------------------------------------------------------------------

    def publish(self, account: str, event_id: str, event_type: str, body: bytes, ttl_s: int,
                deliveries: list[tuple[str, str]], token: str,
                subs_version: str) -> "int | None | SubscriptionsChanged":
        """Store an event once and enqueue ``deliveries`` ((delivery id, subscription id)*, one
        task message each) atomically, if ``subs_version`` is still the version of the
        account's subscriptions (the caller matched the event against that copy; '' when it
        has none).

        Returns the number enqueued (0 writes nothing); None when this account already
        published ``event_id``; SubscriptionsChanged (nothing written) with the current
        version and records when they changed: match against those and call again.
        ``token`` marks this publish: a call retried after a timeout whose first try did run
        finds its own mark and counts as done, not as a duplicate."""
        now = self.clock()
        argv = [body, ttl_s, len(deliveries), account, event_id, event_type, _num(now),
                           _num(now - self.settings.attempt_retention_s), _num(now + self.settings.progress_deadline_s),
                           token, subs_version,
                           " ".join(f"{did} {sub}" for did, sub in deliveries)]
        out = run(self.redis, "publish",
                  [K.event_seen(account, event_id), K.event(account, event_id), K.event_refs(account, event_id),
                   K.deliveries(account), DELIVERIES_QUEUE, K.inflight(), K.subs(account), K.subs_version(account)],
                  argv)
        n = int(out[0])
        if n == -2:
            flat = out[2]
            return SubscriptionsChanged(_text(out[1]), dict(zip(flat[::2], flat[1::2])))
        if n == -1:
            return len(deliveries) if _text(out[1]) == token else None
        return n

    # -- the attempt ------------------------------------------------------------------------

    def claim(self, delivery_id: str, taken: "TakenMessage | None" = None) -> Claim:
        """Load a delivery for an attempt and decide whether it may go now (one call).
        ``taken``: the broker message the worker is taking, recorded in kombu's unacked
        bookkeeping in the same call (see TakenMessage)."""
        now = self.clock()
        lease, progress = self.slot_lease_s, self.settings.progress_deadline_s
        keys = [K.delivery(delivery_id), K.inflight(), K.parked()]
        args = [_num(now), delivery_id, str(self.settings.endpoint_concurrency), _num(lease), self._lease_ms,
                _num(now + lease), _num(now + lease + progress), *self._claim_tail, _num(now + PROBE_TIMEOUT_S),
                *self._claim_tail2]
        if taken is not None:
            keys += [taken.index_key, taken.hash_key]
            args += [taken.tag, taken.entry, _num(taken.at)]
        out = run(self.redis, "claim", keys, args)
        action = _text(out[0])
        if action == "go":
            return Claim("go", subscription=out[1], payload=out[2], retries=int(out[3]), attempts=int(out[4]),
                         created=float(out[5]) if out[5] else None, account=_text(out[6]),
                         subscription_id=_text(out[7]), event_id=_text(out[8]), version=_text(out[9]) or None,
                         event_type=_text(out[10]))
        if action in ("wait", "park"):
            return Claim(action, reason=_text(out[2]), delay_s=float(out[1]))
        return Claim(action, reason=_text(out[1]))

    def settle(self, claim: Claim, attempt: Attempt, *, action: str, ok: bool, counts: bool,
               error_kind: str | None, error: str | None, reason: str | None = None,
               delay_s: float | None = None, broker: "BrokerMessage | None" = None) -> Settled:
        """Record ``attempt`` of the delivery ``claim`` let go, and apply ``action``
        ("delivered", "retry": a countdown of ``delay_s``, "park": the long tier, "dead":
        dead-lettered with ``reason``); release the endpoint slot and wake one waiter (one
        call). ``counts``: the result is the endpoint's doing (not a refused URL or a failed
        transform), so it feeds the breaker and the continuous-failure clock. ``broker``: the
        message the attempt runs from, taken out of kombu's unacked bookkeeping in the same
        call (``broker.done`` is set when it was there), so the worker's ack costs no round trip."""
        did, sub, account = attempt.delivery_id, claim.subscription_id, claim.account
        now, progress = self.clock(), self.settings.progress_deadline_s
        payload, refs = self.payload_keys(account, claim.event_id, claim.version)
        keys = [K.delivery(did), K.inflight(), K.parked(), K.attempts(did), RETRIES_QUEUE, payload, refs,
                K.slots(sub), K.slot_waiters(sub), K.breaker(sub), K.breaker_requests(sub), K.breaker_failures(sub),
                K.stats(sub, f"m{int(now // 60)}"), K.stats(sub, f"h{int(now // 3600)}"), K.stats(sub, "lat"),
                K.stats(sub, "last_ok"), K.stats(sub, "last_error"), K.stats(sub, "failing_since"),
                K.dead(account), K.dead_index(account),
                broker.index_key if broker else "", broker.hash_key if broker else ""]
        due = None if delay_s is None else now + delay_s
        out = run(self.redis, "settle", keys,
                  [_num(now), did, action, "" if due is None else _num(due),
                   json.dumps(asdict(attempt), separators=(",", ":")), "1" if ok else "0", "1" if counts else "0",
                   str(attempt.duration_ms), error_kind or "", "" if attempt.status is None else str(attempt.status),
                   error or "", reason or "", *self._settle_tail, "" if due is None else _num(due + progress),
                   *self._settle_breaker, _num(now + self.settings.breaker_cooldown_s),
                   *self._settle_tail2, str(int(now)), account, sub, claim.event_id, claim.event_type,
                   "" if claim.created is None else _num(claim.created), claim.version or "",
                   str(claim.attempts + 1), broker.tag if broker else "", _num(now + progress)])
        if broker is not None:
            broker.done = out[5] == 1
        return Settled(_text(out[0]), _text(out[1]), _text(out[2]), bool(int(out[3])), _text(out[4]) or None)

    # -- outside the attempt ----------------------------------------------------------------

    def dead_letter(self, delivery_id: str, reason: str | None, error: str | None) -> bool:
        """Dead-letter a delivery whose task failed outside ``settle`` (a killed pool child, an
        unexpected error). Idempotent; True when this call wrote it."""
        return bool(run(self.redis, "dead_letter", [K.delivery(delivery_id), K.inflight()],
                        [delivery_id, _num(self.clock()), str(self.settings.dead_letter_retention_s),
                         reason or "failed", error or ""]))

    def _moves(self, ids: Iterable[bytes | str]) -> list[str]:
        argv = [_num(self.clock()), _num(self.clock() + self.settings.progress_deadline_s)]
        for raw in ids:
            did = _text(raw)
            argv += [did, task_message(DELIVER_TASK, [did], RETRIES_QUEUE)]
        return argv

    def move_due(self, ids: list[bytes]) -> int:
        """Put parked deliveries ``ids`` (due now) back on the retries queue; how many moved."""
        return int(run(self.redis, "move_due", [K.parked(), RETRIES_QUEUE, K.inflight()], self._moves(ids)))

    def wake(self, endpoint: str, candidates: list[bytes]) -> str | None:
        """Move the first of ``candidates`` (oldest waiters of ``endpoint``) still parked onto
        the retries queue; its id, or None."""
        woken = run(self.redis, "wake", [K.parked(), RETRIES_QUEUE, K.slot_waiters(endpoint), K.inflight()],
                    self._moves(candidates))
        return _text(woken) if woken else None

    def resend(self, delivery_id: str, queue: str, now: float, deadline: float) -> bool:
        """The reconciler's re-send of a delivery whose message was lost (only if still overdue)."""
        return bool(run(self.redis, "resend", [K.inflight(), queue, K.delivery(delivery_id)],
                        [delivery_id, _num(now), _num(deadline), task_message(DELIVER_TASK, [delivery_id], queue)]))

    def record_test_send(self, attempt: Attempt, *, account: str, event_id: str, ok: bool, error: str | None) -> None:
        """Record a ``send-test`` delivery (never retried): delivered, or discarded with the
        error, with its one attempt logged; kept a day."""
        did, now = attempt.delivery_id, self.clock()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(K.delivery(did), mapping={
            "account": account, "sub": attempt.subscription_id, "evt": event_id, "type": "webhook.test",
            "status": "delivered" if ok else "discarded", "retries": 0, "attempts": 1, "created": _num(attempt.at),
            "updated": _num(now), "last_status": "" if attempt.status is None else str(attempt.status),
            "last_error": error or "", "reason": "" if ok else "send-test is not retried"})
        pipe.expire(K.delivery(did), 86400)
        pipe.zadd(K.deliveries(account), {did: now})
        pipe.lpush(K.attempts(did), json.dumps(asdict(attempt), separators=(",", ":")))
        pipe.expire(K.attempts(did), self.settings.attempt_retention_s)
        pipe.execute()

    def payload_keys(self, account: str, event_id: str, version: str | None) -> tuple[str, str]:
        """The payload and refs keys of an event (legacy keys for records written before v2)."""
        if version:
            return K.event(account, event_id), K.event_refs(account, event_id)
        return K.legacy_event(event_id), K.legacy_event_refs(event_id)

    def replay(self, entry: dict[str, Any], version: str | None) -> int:
        """A dead letter back to pending on the retries queue; 1 done, 0 gone, -1 payload expired."""
        did, account = entry["delivery_id"], entry["account"]
        now = self.clock()
        payload, _ = self.payload_keys(account, entry["event_id"], version)
        return int(run(self.redis, "replay",
                       [K.delivery(did), K.dead(account), K.dead_index(account), K.deliveries(account),
                        RETRIES_QUEUE, K.inflight(), payload],
                       [did, account, entry["subscription_id"], entry["event_id"], entry["type"],
                        _num(entry["created"]), _num(now), str(self.settings.attempt_retention_s),
                        _num(now + self.settings.progress_deadline_s),
                        task_message(DELIVER_TASK, [did], RETRIES_QUEUE), version or ""]))

    def purge(self, entry: dict[str, Any], version: str | None) -> bool:
        """Delete a dead letter for good: the delivery is discarded, the payload released."""
        did, account = entry["delivery_id"], entry["account"]
        payload, refs = self.payload_keys(account, entry["event_id"], version)
        return bool(run(self.redis, "purge", [K.delivery(did), K.dead(account), K.dead_index(account), payload, refs],
                        [did, _num(self.clock())]))


_store_lock = threading.Lock()
_store: DeliveryStore | None = None


def get_store() -> DeliveryStore:
    """The process's store on the shared client and the current settings."""
    from ..connection import get_redis
    from ..settings import get_settings

    global _store
    r, s = get_redis(), get_settings()
    st = _store
    if st is None or st.redis is not r or st.settings is not s:
        with _store_lock:
            st = _store = DeliveryStore(r, s)
    return st
