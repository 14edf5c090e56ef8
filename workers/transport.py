"""kombu's Redis transport with one race closed: a worker must survive Redis going away.

kombu 5.7: when Redis dies while tasks are in flight (acks_late), Celery closes the broken
connection, which detaches the transport from the channel (``transport.client = None``). A
channel left behind then needs a fresh connection pool: to restore its unacked messages on a
second close, or to ack/reject a message whose task finishes after the reconnect. Building
that pool reads ``transport.client.hostname`` and raises AttributeError, which Celery treats
as unrecoverable: the worker exits instead of reconnecting. Here a detached channel raises a
connection error instead, which every one of those callers already tolerates. The messages
concerned stay in Redis's ``unacked`` set and come back after the visibility timeout.
"""
from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

__all__ = ["Transport"]


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    def _connparams(self, asynchronous: bool = False) -> Any:
        if getattr(self.connection, "client", None) is None:
            raise redis.ConnectionError("this channel's broker connection was closed (Redis went away)")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel
