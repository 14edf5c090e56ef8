"""Per-endpoint concurrency slots and rate limit, shared by every worker through Redis.

Both key on the endpoint (the subscription id), never on the host: thousands of accounts
share hooks.slack.com. Each call is one Lua script, so racing workers cannot overshoot.

Keys: ``wh:slots:<endpoint>`` (sorted set holder -> lease expiry), ``wh:rate:<endpoint>``
(the GCRA theoretical arrival time) and ``wh:rate:<endpoint>:held`` (sorted set holder ->
booked time). All expire on their own once unused.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

__all__ = ["EndpointSlots", "RateLimiter"]

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local mine = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not mine and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return 1
"""

_RESERVE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tau = (tonumber(ARGV[3]) - 1) * interval
local holder = ARGV[4]
local grace = tonumber(ARGV[5])
local function fmt(x) return string.format('%.17g', x) end
if holder ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now - grace))
  local booked = redis.call('ZSCORE', KEYS[2], holder)
  if booked then
    booked = tonumber(booked)
    if booked <= now then
      redis.call('ZREM', KEYS[2], holder)
      return '0'
    end
    return fmt(booked - now)
  end
end
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local go_at = math.max(tat - tau, now)
if go_at > now and holder == '' then return fmt(go_at - now) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], fmt(new_tat), 'PX', string.format('%d', math.ceil((new_tat - now) * 1000) + 1000))
if go_at > now then
  redis.call('ZADD', KEYS[2], fmt(go_at), holder)
  redis.call('PEXPIRE', KEYS[2], string.format('%d', math.ceil((go_at - now + grace) * 1000)))
  return fmt(go_at - now)
end
return '0'
"""


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
        self._acquire = redis.register_script(_ACQUIRE)

    @staticmethod
    def _key(endpoint: str) -> str:
        return f"wh:slots:{endpoint}"

    def acquire(self, endpoint: str, holder: str, limit: int, lease_s: float) -> bool:
        """Take a slot for ``holder`` (e.g. the delivery id); False when all ``limit`` are
        held. Expired leases are reclaimed first. A holder that already has a slot keeps
        it and has its lease renewed. Raises ValueError for a limit < 1 or lease <= 0."""
        if limit < 1 or not lease_s > 0:
            raise ValueError("limit must be >= 1 and lease_s > 0")
        now = self._clock()
        ok = self._acquire(
            keys=[self._key(endpoint)],
            args=[_num(now), holder, limit, _num(now + lease_s), math.ceil(lease_s * 1000)],
        )
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
        self._reserve = redis.register_script(_RESERVE)

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
        base = f"wh:rate:{endpoint}"
        wait = self._reserve(
            keys=[base, f"{base}:held"],
            args=[_num(self._clock()), _num(1.0 / rate_per_s), int(burst), holder or "", _num(self._grace_s)],
        )
        return max(0.0, float(wait.decode() if isinstance(wait, bytes) else wait))
