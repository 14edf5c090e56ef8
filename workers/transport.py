"""kombu's Redis transport, with one race closed and one waste removed.

Waste: kombu 5.7 builds a new ``redis.Redis`` client (~80 µs) every time a channel needs a
synchronous one without being handed one: twice per message in the ack path of a late-acked
task (the unacked bookkeeping), and on every restore sweep. Here a channel keeps one client
per connection pool and hands it out again (redis-py clients are thread-safe: each command
takes a connection from the pool); a new pool (after a reconnect) gets a new client.

The race: a worker must survive Redis going away.

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

from contextlib import contextmanager
from typing import Any, Iterator

import redis
from kombu.transport import redis as kombu_redis

__all__ = ["Transport"]


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    _sync_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool  # raises a connection error on a detached channel (see _connparams)
        cached = self._sync_client
        if cached is None or cached.connection_pool is not pool:
            cached = self._sync_client = self._create_client()
        yield cached

    def _connparams(self, asynchronous: bool = False) -> Any:
        if getattr(self.connection, "client", None) is None:
            raise redis.ConnectionError("this channel's broker connection was closed (Redis went away)")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel
