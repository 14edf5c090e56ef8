"""Audit log of administrative changes, per account (newest first, bounded)."""
from __future__ import annotations

import json
import time
from typing import Any

from .connection import get_redis
from .ids import check_account
from .keys import K

__all__ = ["record", "entries", "MAX_ENTRIES"]

MAX_ENTRIES = 10_000


def record(
    account: str,
    action: str,
    *,
    subscription_id: str | None = None,
    changes: dict[str, Any] | None = None,
    actor: str | None = None,
    pipe: Any = None,
) -> None:
    """Append one entry. ``changes`` must never hold secrets (callers pass field names
    or redacted values). With ``pipe`` the write joins the caller's transaction."""
    entry = {
        "at": time.time(),
        "account": account,
        "action": action,
        "subscription_id": subscription_id,
        "changes": changes or {},
        "actor": actor,
    }
    target = pipe if pipe is not None else get_redis().pipeline(transaction=True)
    target.lpush(K.audit(account), json.dumps(entry))
    target.ltrim(K.audit(account), 0, MAX_ENTRIES - 1)
    if pipe is None:
        target.execute()


def entries(account: str, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` entries of ``account``."""
    check_account(account)
    raw = get_redis().lrange(K.audit(account), 0, max(0, limit - 1))
    return [json.loads(r) for r in raw]
