"""Endpoint health: alerts when an endpoint starts failing or recovers (breaker
transitions, reported by ``settle``), and disabling a subscription whose endpoint has failed continuously for
WEBHOOKS_DISABLE_AFTER_S (5 days by default, as Svix). Alerts go to Sentry (when on) and,
when WEBHOOKS_OPS_URL is set, as signed ``endpoint.*`` webhooks to the operator."""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from .settings import Settings

__all__ = ["disable_failing", "alert"]

log = logging.getLogger("webhooks.health")


def disable_failing(sub: Any, settings: Settings) -> None:
    """``sub``'s endpoint has failed continuously for WEBHOOKS_DISABLE_AFTER_S (``settle``
    tracks that and says so): disable the subscription and alert."""
    from . import subscriptions

    days = settings.disable_after_s / 86400
    reason = f"endpoint failing continuously for {days:g} days"
    subscriptions.disable(sub.account, sub.id, reason=reason, actor="webhooks")
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
