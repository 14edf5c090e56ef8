"""The producer's copy of each account's subscriptions, decoded, per stored version.

``publish()`` matches an event against this copy and hands the version to the enqueue script,
which refuses (and returns the current records) when the account's subscriptions changed since:
one Redis call per publish instead of a read and then a write, and no window in which a
subscription deleted, disabled or added after the read is missed. Every writer of an account's
subscriptions replaces its version (``subscriptions.bump_version``).

An entry is also dropped after ``MAX_AGE_S``, so a change by a writer that does not bump the
version (a process of an older release during an upgrade, a hand edit) is seen within that.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from .subscriptions import Subscription

__all__ = ["Known", "get", "remember", "MAX_AGE_S", "ACCOUNTS_KEPT"]

MAX_AGE_S = 60.0
ACCOUNTS_KEPT = 1024


@dataclass
class Known:
    """One account's subscriptions (oldest first) as stored at ``version``."""

    version: str
    subscriptions: tuple[Subscription, ...]
    read_at: float
    _by_type: dict[str, tuple[Subscription, ...]] = field(default_factory=dict, repr=False)

    def candidates(self, event_type: str) -> tuple[Subscription, ...]:
        """The enabled subscriptions whose patterns want ``event_type``, oldest first (their
        filters still decide)."""
        hit = self._by_type.get(event_type)
        if hit is None:
            hit = self._by_type[event_type] = tuple(
                s for s in self.subscriptions if s.enabled and s.wants(event_type))
        return hit


_lock = threading.Lock()
_known: "OrderedDict[str, Known]" = OrderedDict()


def get(account: str) -> Known | None:
    """The copy of ``account``'s subscriptions, or None (never read, forgotten, or too old)."""
    with _lock:
        hit = _known.get(account)
        if hit is None:
            return None
        if time.monotonic() - hit.read_at > MAX_AGE_S:
            del _known[account]
            return None
        _known.move_to_end(account)
        return hit


def remember(account: str, version: str, subscriptions: list[Subscription]) -> Known:
    """Keep ``subscriptions`` as ``account``'s at ``version``; the new entry."""
    known = Known(version, tuple(sorted(subscriptions, key=lambda s: s.created_at)), time.monotonic())
    with _lock:
        _known[account] = known
        _known.move_to_end(account)
        while len(_known) > ACCOUNTS_KEPT:
            _known.popitem(last=False)
    return known
