"""Endpoint health: alerts when an endpoint starts failing or recovers (breaker
transitions), and disabling a subscription whose endpoint has failed continuously for
WEBHOOKS_DISABLE_AFTER_S (5 days by default, as Svix). Alerts go to Sentry (when on) and,
when WEBHOOKS_OPS_URL is set, as signed ``endpoint.*`` webhooks to the operator."""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from .connection import get_redis
from .settings import Settings

__all__ = ["after_attempt", "alert"]

log = logging.getLogger("webhooks.health")


def _failing_key(sub_id: str) -> str:
    return f"wh:st:{sub_id}:failing_since"


def after_attempt(sub: Any, ok: bool, transition: Any, error: str | None, settings: Settings, *, now: float | None = None) -> None:
    """Track continuous failure of ``sub``'s endpoint; alert on transitions; disable when due."""
    now = time.time() if now is None else now
    r = get_redis()
    if ok:
        r.delete(_failing_key(sub.id))
    else:
        r.set(_failing_key(sub.id), repr(now), nx=True, ex=int(settings.disable_after_s) + 86400)
    if transition is not None and getattr(transition, "failing", False):
        alert("endpoint.failing", sub, {"error": error}, settings)
    if transition is not None and getattr(transition, "recovered", False):
        alert("endpoint.recovered", sub, {}, settings)
    if not ok:
        since = r.get(_failing_key(sub.id))
        if since is not None and now - float(since) >= settings.disable_after_s:
            from . import subscriptions

            reason = f"endpoint failing continuously since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(float(since)))}"
            subscriptions.disable(sub.account, sub.id, reason=reason, actor="webhooks")
            r.delete(_failing_key(sub.id))
            alert("endpoint.disabled", sub, {"reason": reason}, settings)


def alert(kind: str, sub: Any, details: dict[str, Any], settings: Settings) -> None:
    """Best-effort operational alert; never raises."""
    log.warning("%s: subscription %s of account %s %s", kind, sub.id, sub.account, details or "")
    try:
        import sentry_sdk

        if sentry_sdk.get_client().is_active():
            sentry_sdk.capture_message(f"{kind}: subscription {sub.id} (account {sub.account})", level="warning")
    except Exception:  # pragma: no cover - monitoring must not break delivery
        log.debug("sentry alert failed", exc_info=True)
    if not (settings.ops_url and settings.ops_secret):
        return
    try:
        from . import signing
        from .delivery import get_transport
        from .ids import new_id
        from .transport import OutgoingRequest

        body = json.dumps({
            "type": kind,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": {"account": sub.account, "subscription_id": sub.id, "url": sub.url, **details},
        }, separators=(",", ":")).encode()
        headers = {**signing.signed_headers([settings.ops_secret], new_id("msg"), body), "content-type": "application/json"}
        get_transport().send(OutgoingRequest(url=settings.ops_url, body=body, headers=headers))
    except Exception as exc:  # noqa: BLE001 - best effort, logged
        log.warning("operational webhook %s to the ops URL failed: %s", kind, type(exc).__name__)
