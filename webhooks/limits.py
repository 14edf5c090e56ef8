"""Per-endpoint concurrency slots and rate limit, shared by every worker through Redis.

Both key on the endpoint (the subscription id), never on the host: thousands of accounts
share hooks.slack.com. Each call is one Lua script (``webhooks/state/lua``: the same functions
that the state machine's ``claim`` runs before every attempt), so racing workers cannot overshoot.

Keys: ``wh:slots:<endpoint>`` (sorted set holder -> lease expiry), ``wh:rate:<endpoint>``
(the GCRA theoretical arrival time) and ``wh:rate:<endpoint>:held`` (sorted set holder ->
booked time). All expire on their own once unused.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

from .keys import K
from .state.scripts import run

__all__ = ["EndpointSlots", "RateLimiter"]

def _num(value: float) -> str:
    return repr(float(value))


class EndpointSlots:
    """At most ``limit`` deliveries in flight per endpoint, across all workers.

    A slot is a lease: a holder killed mid-delivery frees its slot after ``lease_s`` at
    the latest, so the lease must outlast one attempt (its total deadline plus margin).
    """

    def __init__(self, redis: Any, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock

    @staticmethod
    def _key(endpoint: str) -> str:
        return K.slots(endpoint)

    def acquire(self, endpoint: str, holder: str, limit: int, lease_s: float) -> bool:
        """Take a slot for ``holder`` (e.g. the delivery id); False when all ``limit`` are
        held. Expired leases are reclaimed first. A holder that already has a slot keeps
        it and has its lease renewed. Raises ValueError for a limit < 1 or lease <= 0."""
        if limit < 1 or not lease_s > 0:
            raise ValueError("limit must be >= 1 and lease_s > 0")
        now = self._clock()
        ok = run(self._redis, "slot_acquire", [self._key(endpoint)],
                 [_num(now), holder, limit, _num(now + lease_s), math.ceil(lease_s * 1000)])
        return bool(int(ok))

    def release(self, endpoint: str, holder: str) -> None:
        """Give ``holder``'s slot back (nothing happens if it holds none)."""
        self._redis.zrem(self._key(endpoint), holder)

    def in_flight(self, endpoint: str) -> int:
        """How many unexpired leases ``endpoint`` has now."""
        return int(self._redis.zcount(self._key(endpoint), f"({_num(self._clock())}", "+inf"))


class RateLimiter:
    """An optional rate limit per endpoint (GCRA): it delays deliveries, never fails them.

    ``booking_grace_s``: how late a holder may come back for a booked time before the
    booking is dropped (the slot then simply went unused).
    """

    def __init__(
        self, redis: Any, clock: Callable[[], float] = time.time, *, booking_grace_s: float = 300.0
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._grace_s = booking_grace_s

    def reserve(self, endpoint: str, rate_per_s: float, burst: int = 1, holder: str | None = None) -> float:
        """Seconds to wait before delivering to ``endpoint``; 0 means go now (and counts).

        Without ``holder``, a wait books nothing: come back after it and call again.
        With ``holder`` (the delivery id), a wait books a time for that holder, so queued
        deliveries get successive times (0, 0.5, 1.0, ... at 2/s) instead of all retrying at
        once; calling again with the same holder returns the rest of its wait, and 0 (using
        the booking) once its time has come. Raises ValueError for a rate <= 0 or burst < 1.
        """
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)) or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        wait = run(self._redis, "rate_reserve", [K.rate(endpoint), K.rate_held(endpoint)],
                   [_num(self._clock()), _num(1.0 / rate_per_s), int(burst), holder or "", _num(self._grace_s)])
        return max(0.0, float(wait.decode() if isinstance(wait, bytes) else wait))
