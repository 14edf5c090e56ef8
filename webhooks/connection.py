"""One Redis client per process for state, built from settings, with bounded timeouts.

WEBHOOKS_REDIS_URL may name the primary through Redis Sentinel (``webhooks/sentinel.py``):
the client then asks a sentinel for the primary on every new connection, and a connection
to a demoted primary fails (ReadOnlyError -> ConnectionError) and is retried on the new one.
"""
from __future__ import annotations

import threading

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import sentinel
from .settings import get_settings

__all__ = ["get_redis", "reset"]

_lock = threading.Lock()
_client: redis.Redis | None = None


def get_redis() -> redis.Redis:
    """The shared client. A dead or hung Redis raises within WEBHOOKS_PUBLISH_TIMEOUT_S
    instead of hanging: each try waits at most half of it, and there is one retry (which
    also heals a connection that a Redis restart left stale)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                s = get_settings()
                connect_s, timeout_s = min(2.0, s.publish_timeout_s / 2), s.publish_timeout_s / 2
                if sentinel.is_sentinel(s.redis_url):
                    _client = _sentinel_client(sentinel.parse(s.redis_url), connect_s, timeout_s)
                else:
                    _client = redis.Redis.from_url(
                        s.redis_url,
                        socket_connect_timeout=connect_s,
                        socket_timeout=timeout_s,
                        retry=Retry(NoBackoff(), 1),
                        decode_responses=False,
                    )
    return _client


def _sentinel_client(url: sentinel.SentinelURL, connect_s: float, timeout_s: float) -> redis.Redis:
    """A client of the primary that ``url``'s sentinels name now (asked again on each new connection)."""
    from redis.sentinel import Sentinel

    finder = Sentinel(
        list(url.sentinels),
        sentinel_kwargs=url.sentinel_kwargs(timeout_s, connect_s),
        socket_connect_timeout=connect_s,
        socket_timeout=timeout_s,
        username=url.username,
        password=url.password,
    )
    return finder.master_for(url.master, db=url.db, retry=Retry(NoBackoff(), 1), decode_responses=False)


def reset() -> None:
    """Drop the cached client (after settings change, or in a forked child)."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
