"""A circuit breaker per endpoint (subscription id), shared by every worker through Redis.

    closed ──(>= failure_ratio of >= min_requests fail within window_s)──▶ open
    open ──(cooldown_s passed; the first allow() becomes the probe)──▶ half_open
    half_open ──(a result succeeds)──▶ closed (counts reset)
    half_open ──(a result fails)──▶ open for another cooldown_s

Each call is one Lua script (``webhooks/state/lua/_lib.lua``: the functions the state machine's
``claim`` and ``settle`` run on every attempt), so workers racing on one endpoint see one consistent state:
exactly one caller gets the probe, and exactly one ``record`` reports each transition.
Requests are counted in per-second buckets; a bucket is forgotten once it lies wholly
before the window (so a result may be remembered up to 1 s longer than ``window_s``).
Results recorded while open (attempts that started before it opened) are ignored; in
half-open any result counts as the probe's, since it too is fresh news of the endpoint.

Keys: ``wh:brk:<endpoint>`` (hash: state, opened_at, retry_at, probe_until) and
``wh:brk:<endpoint>:req`` / ``:fail`` (hash: second -> count). All expire after a day
without writes; call ``reset`` when a subscription is deleted.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from .keys import K
from .state import BREAKER_IDLE_TTL_S, PROBE_TIMEOUT_S, PROBE_WAIT_S
from .state.scripts import run

__all__ = ["BreakerConfig", "CircuitBreaker", "Transition", "CLOSED", "OPEN", "HALF_OPEN"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

_IDLE_TTL_S = BREAKER_IDLE_TTL_S

@dataclass(frozen=True)
class BreakerConfig:
    """When to open and how long to hold. Defaults follow Convoy (REFERENCE.md).

    ``probe_timeout_s``: a probe whose result never comes (its worker died) is replaced
    after this. ``probe_wait_s``: the longest wait told to callers while a probe is out.
    """

    window_s: float = 300.0
    min_requests: int = 10
    failure_ratio: float = 0.7
    cooldown_s: float = 30.0
    probe_timeout_s: float = PROBE_TIMEOUT_S
    probe_wait_s: float = PROBE_WAIT_S

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.cooldown_s <= 0 or self.probe_timeout_s <= 0 or self.probe_wait_s <= 0:
            raise ValueError("breaker durations must be positive")
        if self.min_requests < 1:
            raise ValueError("min_requests must be at least 1")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")


class Transition(NamedTuple):
    """The state before and after one ``record``; ``old == new`` when nothing changed.

    Alert on ``failing`` ("endpoint.failing") and ``recovered`` ("endpoint.recovered"):
    each is true for exactly one ``record`` call per episode, whichever worker made it.
    """

    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def failing(self) -> bool:
        """The breaker just opened after being closed (not a failed probe re-opening it)."""
        return self.old == CLOSED and self.new == OPEN

    @property
    def recovered(self) -> bool:
        """The breaker just closed after being open."""
        return self.old != CLOSED and self.new == CLOSED


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _num(value: float) -> str:
    return repr(float(value))


class CircuitBreaker:
    """Per-endpoint breaker on ``redis`` (redis-py or fakeredis with Lua), timed by ``clock``."""

    def __init__(
        self,
        redis: Any,
        config: BreakerConfig = BreakerConfig(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._config = config
        self._clock = clock

    @staticmethod
    def _keys(endpoint: str) -> list[str]:
        return [K.breaker(endpoint), K.breaker_requests(endpoint), K.breaker_failures(endpoint)]

    def allow(self, endpoint: str) -> tuple[bool, float]:
        """May an attempt go to ``endpoint`` now?

        Returns (True, 0) when closed, or to the one caller that becomes the probe once the
        cool-down is over; otherwise (False, seconds to wait before asking again).
        """
        c = self._config
        now = self._clock()
        allowed, wait = run(self._redis, "breaker_allow", self._keys(endpoint)[:1],
                            [_num(now), _num(now + c.probe_timeout_s), _num(c.probe_wait_s), _IDLE_TTL_S])
        return bool(int(allowed)), float(_text(wait))

    def record(self, endpoint: str, success: bool) -> Transition:
        """Count one attempt's result; returns the Transition it caused (``.new`` is the
        state now). Record only results the endpoint is answerable for (not URL refusals
        or failed transforms)."""
        c = self._config
        now = self._clock()
        old, new = run(
            self._redis, "breaker_record", self._keys(endpoint),
            [
                _num(now),
                "1" if success else "0",
                str(math.floor(now)),
                _num(c.window_s),
                c.min_requests,
                _num(c.failure_ratio),
                _num(now + c.cooldown_s),
                _IDLE_TTL_S,
            ],
        )
        return Transition(_text(old), _text(new))

    def state(self, endpoint: str) -> dict[str, Any]:
        """A snapshot for ``webhooks status``: state, failures and requests in the window,
        opened_at and retry_at (unix times, None when closed; in half-open, retry_at is
        when the outstanding probe's lease ends)."""
        key, req_key, fail_key = self._keys(endpoint)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(key)
        pipe.hgetall(req_key)
        pipe.hgetall(fail_key)
        raw, reqs, fails = pipe.execute()
        h = {_text(k): _text(v) for k, v in raw.items()}
        cutoff = self._clock() - self._config.window_s

        def total(buckets: dict[Any, Any]) -> int:
            return sum(int(v) for k, v in buckets.items() if int(_text(k)) + 1 > cutoff)

        state = h.get("state", CLOSED)
        retry_at = h.get("probe_until") if state == HALF_OPEN else h.get("retry_at")
        return {
            "state": state,
            "failures": total(fails),
            "requests": total(reqs),
            "opened_at": float(h["opened_at"]) if state != CLOSED and "opened_at" in h else None,
            "retry_at": float(retry_at) if state != CLOSED and retry_at else None,
        }

    def reset(self, endpoint: str) -> None:
        """Forget everything about ``endpoint``: it is closed with no history."""
        self._redis.delete(*self._keys(endpoint))
