"""kombu's Redis Sentinel transport, with the same fix as ``workers/transport.py``.

Chosen by ``workers/config.py`` when WEBHOOKS_REDIS_URL is a ``sentinel://`` URL. The channel
takes ``workers.transport.Channel`` first in its bases, so whatever that module changes in the
plain Redis channel (the detached-channel race) applies here too, and kombu's SentinelChannel
for the pools: each new connection asks a sentinel for the current primary.
"""
from __future__ import annotations

from kombu.transport import redis as kombu_redis

from . import transport

__all__ = ["Transport"]


class Channel(transport.Channel, kombu_redis.SentinelChannel):  # type: ignore[misc]
    """Our Redis channel, with its connection pools built through Sentinel."""


class Transport(kombu_redis.SentinelTransport):  # type: ignore[misc]
    Channel = Channel
