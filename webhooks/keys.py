"""Every Redis key this project writes, in one place. All start with ``wh:``."""
from __future__ import annotations

__all__ = ["K"]


class K:
    """Key builders. Account-scoped keys carry the account so one tenant never reads another's."""

    @staticmethod
    def subs(account: str) -> str:
        """Hash sub_id -> subscription JSON, for one account."""
        return f"wh:subs:{account}"

    @staticmethod
    def event(event_id: str) -> str:
        """String: the event envelope JSON, stored once for all its deliveries."""
        return f"wh:evt:{event_id}"

    @staticmethod
    def event_refs(event_id: str) -> str:
        """Counter: deliveries of this event not yet ended; the payload is dropped at 0."""
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
