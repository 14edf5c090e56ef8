"""One Redis client per process for state, built from settings, with bounded timeouts."""
from __future__ import annotations

import threading

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

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
                _client = redis.Redis.from_url(
                    s.redis_url,
                    socket_connect_timeout=min(2.0, s.publish_timeout_s / 2),
                    socket_timeout=s.publish_timeout_s / 2,
                    retry=Retry(NoBackoff(), 1),
                    decode_responses=False,
                )
    return _client


def reset() -> None:
    """Drop the cached client (after settings change, or in a forked child)."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
