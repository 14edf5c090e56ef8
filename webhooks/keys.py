"""Every Redis key this project writes, in one place. All start with ``wh:``."""
from __future__ import annotations

from typing import Callable

__all__ = ["K"]


class K:
    """Key builders. Account-scoped keys carry the account so one tenant never reads another's."""

    @staticmethod
    def subs(account: str) -> str:
        """Hash sub_id -> subscription JSON, for one account."""
        return f"wh:subs:{account}"

    @staticmethod
    def subs_version(account: str) -> str:
        """String: a random token that every writer of ``subs(account)`` replaces in the same
        transaction, so a publisher can tell that the copy it decoded is still current."""
        return f"wh:subs:{account}:v"

    @staticmethod
    def event(account: str, event_id: str) -> str:
        """String: the event envelope JSON, stored once for all its deliveries. Scoped by
        account: the same event id in two accounts is two events."""
        return f"wh:evt:{account}:{event_id}"

    @staticmethod
    def event_refs(account: str, event_id: str) -> str:
        """Counter: deliveries of this event not yet ended; the payload is dropped at 0."""
        return f"wh:evt:{account}:{event_id}:refs"

    @staticmethod
    def event_seen(account: str, event_id: str) -> str:
        """Marker: this account published this event id (a second publish is a duplicate)."""
        return f"wh:evt:{account}:{event_id}:seen"

    @staticmethod
    def legacy_event(event_id: str) -> str:
        """The payload key of deliveries published before event ids were scoped by account
        (read, never written: such deliveries finish and replay as before)."""
        return f"wh:evt:{event_id}"

    @staticmethod
    def legacy_event_refs(event_id: str) -> str:
        """The refs counter beside ``legacy_event``."""
        return f"wh:evt:{event_id}:refs"

    @staticmethod
    def delivery(delivery_id: str) -> str:
        """Hash: one (event, subscription) delivery: account, sub, event, status, attempts."""
        return f"wh:dlv:{delivery_id}"

    @staticmethod
    def attempts(delivery_id: str) -> str:
        """List (newest first) of attempt records of one delivery."""
        return f"wh:dlv:{delivery_id}:attempts"

    @staticmethod
    def deliveries(account: str) -> str:
        """Sorted set delivery_id -> created time, per account (for listings, bounded)."""
        return f"wh:dlvs:{account}"

    @staticmethod
    def dead(account: str) -> str:
        """Hash delivery_id -> dead-letter JSON, per account."""
        return f"wh:dead:{account}"

    @staticmethod
    def dead_index(account: str) -> str:
        """Sorted set delivery_id -> time it died, per account."""
        return f"wh:dead:{account}:idx"

    @staticmethod
    def audit(account: str) -> str:
        """List (newest first) of administrative changes in one account."""
        return f"wh:audit:{account}"

    @staticmethod
    def accounts() -> str:
        """Set of accounts that have (had) subscriptions."""
        return "wh:accounts"

    @staticmethod
    def slot_waiters(endpoint: str) -> str:
        """Sorted set delivery_id -> time it began waiting: deliveries parked because every
        slot of the endpoint was taken; each released slot wakes the oldest."""
        return f"wh:slotwait:{endpoint}"

    @staticmethod
    def inflight() -> str:
        """Sorted set delivery_id -> time by which it must show progress: every delivery not
        yet ended, so the reconciler can find one whose message was lost."""
        return "wh:inflight"

    @staticmethod
    def parked() -> str:
        """Sorted set delivery_id -> due unix time: long-tier retries waiting in Redis."""
        return "wh:parked"

    @staticmethod
    def slots(endpoint: str) -> str:
        """Sorted set holder -> lease expiry: the endpoint's concurrency slots."""
        return f"wh:slots:{endpoint}"

    @staticmethod
    def rate(endpoint: str) -> str:
        """String: the endpoint's GCRA theoretical arrival time."""
        return f"wh:rate:{endpoint}"

    @staticmethod
    def rate_held(endpoint: str) -> str:
        """Sorted set holder -> booked time: deliveries told to come back at a rate slot."""
        return f"wh:rate:{endpoint}:held"

    @staticmethod
    def breaker(endpoint: str) -> str:
        """Hash: the endpoint's circuit breaker (state, opened_at, retry_at, probe_until)."""
        return f"wh:brk:{endpoint}"

    @staticmethod
    def breaker_requests(endpoint: str) -> str:
        """Hash second -> attempts counted by the breaker's window."""
        return f"wh:brk:{endpoint}:req"

    @staticmethod
    def breaker_failures(endpoint: str) -> str:
        """Hash second -> failed attempts counted by the breaker's window."""
        return f"wh:brk:{endpoint}:fail"

    @staticmethod
    def stats(sub_id: str, what: str) -> str:
        """Health figures of one endpoint: ``m<minute>`` / ``h<hour>`` hashes (ok, fail),
        ``lat`` (recent latencies), ``last_error``, ``last_ok``, ``failing_since``."""
        return f"wh:st:{sub_id}:{what}"

    @staticmethod
    def template(builder: Callable[..., str], arity: int = 1) -> str:
        """``builder``'s key with ``{1}`` (and ``{2}``) where the ids go: Lua scripts that
        find ids in a record fill these in, so every key is still spelled here alone."""
        return builder(*("{%d}" % (i + 1) for i in range(arity)))

