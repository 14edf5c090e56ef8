"""The demo leaves a Redis as it found it: every key it wrote is removed when it ends, also after
Ctrl-C.

``Footprint.start`` notes the keys present before the demo (a database over ``MAX_KEYS`` keys
is refused: that is not a place for a demo). ``Footprint.clean``, called once the worker has
stopped (nothing writes any more), removes

- new keys that are the demo's: any ``wh:`` key naming the demo's account, one of its
  subscriptions, deliveries or events, and the stack's own (kombu's bindings, the reconciler's
  lock);
- the demo's entries in shared keys, new or not: its account in ``wh:accounts``, its delivery
  ids in the in-flight and parked sets, its task messages in the queues and in kombu's unacked
  set, and the beat ticks its embedded beat queued. Another client's entries there stay (the demo's worker may have picked up, and put back,
  deliveries that were not its own); a key left empty disappears, as Redis does.

New keys that are none of these (another client's, writing at the same time) are left alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import redis

from .processes import DemoError

__all__ = ["Footprint", "MAX_KEYS"]

MAX_KEYS = 50_000
_QUEUES = (b"deliveries", b"retries")
_SHARED = {b"wh:accounts", b"wh:inflight", b"wh:parked", b"unacked", b"unacked_index", *_QUEUES}
_STACK_KEYS = {b"wh:reconcile:scan", b"unacked_mutex"}
_STACK_PREFIXES = (b"_kombu.", b"celery-task-meta-")


def _periodic(message: bytes) -> bool:
    """A task message without arguments: a beat tick (move due retries, reconcile), harmless to drop
    (the next tick sends another), which the demo's embedded beat sends."""
    return b'"argsrepr": "()"' in message or b'"argsrepr": "[]"' in message


@dataclass
class Footprint:
    """The keys of one Redis database before the demo, and the clean-up after it."""

    url: str
    before: set[bytes] = field(default_factory=set)
    removed: int = 0
    restored: int = 0

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=10)

    def start(self) -> "Footprint":
        """Note the keys there now. Raises DemoError for a database too large to tell apart."""
        client = self._client()
        try:
            size = int(client.dbsize())
            if size > MAX_KEYS:
                raise DemoError(f"the Redis at {self.url} holds {size} keys; the demo cleans up after itself only in a "
                                f"database of at most {MAX_KEYS}: point WEBHOOKS_REDIS_URL at another one, or unset it")
            self.before = set(client.scan_iter(count=1000))
        finally:
            client.close()
        return self

    def _tokens(self, client: redis.Redis, account: str) -> tuple[set[bytes], set[bytes]]:
        """(every id the demo's account owns, its delivery ids) as stored right now."""
        from webhooks.keys import K

        subs = set(client.hkeys(K.subs(account)))
        deliveries = set(client.zrange(K.deliveries(account), 0, -1))
        pipe = client.pipeline(transaction=False)
        for did in deliveries:
            pipe.hget(K.delivery(did.decode()), "evt")
        events = {e for e in pipe.execute() if e}
        return {account.encode(), *subs, *deliveries, *events}, deliveries

    def clean(self, account: str) -> None:
        """Remove what the demo wrote (see the module docstring); call once nothing writes any more."""
        from webhooks.keys import K

        client = self._client()
        try:
            tokens, deliveries = self._tokens(client, account)
            new = set(client.scan_iter(count=1000)) - self.before
            ours = [k for k in new if k not in _SHARED and (
                k in _STACK_KEYS or k.startswith(_STACK_PREFIXES) or (k.startswith(b"wh:") and any(t in k for t in tokens)))]
            for start in range(0, len(ours), 500):
                self.removed += int(client.delete(*ours[start:start + 500]))
            def took(key: str | bytes, n: int) -> None:
                # Entries taken out of a key that was there before the demo; a key the demo
                # created counts as removed once it is empty.
                name = key.encode() if isinstance(key, str) else key
                if name in self.before:
                    self.restored += n
                elif n and not client.exists(name):
                    self.removed += 1

            took(K.accounts(), int(client.srem(K.accounts(), account)))
            for zset in (K.inflight(), K.parked()):
                took(zset, int(client.zrem(zset, *deliveries)) if deliveries else 0)
            for queue in _QUEUES:
                mine = [m for m in client.lrange(queue, 0, -1) if _periodic(m) or any(d in m for d in deliveries)]
                took(queue, sum(int(client.lrem(queue, 1, m)) for m in mine))
            tags = [t for t, m in client.hgetall("unacked").items() if _periodic(m) or any(d in m for d in deliveries)]
            if tags:
                client.zrem("unacked_index", *tags)
            took("unacked", int(client.hdel("unacked", *tags)) if tags else 0)
        finally:
            client.close()
