"""What a subscription would be sent (preview), and a one-shot test delivery (send-test)."""
from __future__ import annotations

import time
from typing import Any

from . import events, signing
from .state import Attempt, get_store
from .errors import DeliveryError, ValidationError
from .ids import new_id
from .policy import Verdict, classify
from .settings import get_settings
from .subscriptions import Subscription

__all__ = ["preview", "send_test"]


def _envelope(raw_event: dict[str, Any] | None, sample_type: str | None) -> dict[str, Any]:
    """The envelope publish() would build, refused as publish() refuses it (schema, id, size)."""
    if sample_type is not None:
        envelope = events.build_envelope(sample_type, events.sample(sample_type))
    elif not isinstance(raw_event, dict) or "type" not in raw_event or "data" not in raw_event:
        raise ValidationError("the event file must be a JSON object with 'type' and 'data'", {"event": ["missing type or data"]})
    else:
        envelope = events.build_envelope(raw_event["type"], raw_event["data"], event_id=raw_event.get("id"))
    events.check_size(events.serialize(envelope), get_settings().max_payload_bytes)
    return envelope


def _body_and_headers(sub: Subscription, envelope: dict[str, Any]) -> tuple[str | None, bytes, dict[str, str]]:
    """(why it is not sent or None, body, extra headers), decided as the producer and worker do."""
    from .producer import _transform_for

    if not sub.wants(envelope["type"]):
        return f"the subscription takes {', '.join(sub.events)}, not {envelope['type']}", b"", {}
    t = _transform_for(sub)
    if t is not None and not t.accepts(envelope):
        return "the filter does not match this event", b"", {}
    body = events.serialize(envelope) if t is None else t.body(envelope)
    extra = {} if t is None else dict(t.headers())
    return None, body, extra


def preview(sub: Subscription, *, raw_event: dict[str, Any] | None = None, sample_type: str | None = None) -> dict[str, Any]:
    """Whether the event would be sent to ``sub`` (its event types and filter), and the exact body
    and headers it would get: ours, the subscription's extra ones and those the HTTP client adds
    (``host`` aside). Returns {"accepted", "reason", "body", "headers", "problems"}; "problems"
    lists each path of the subscription's transform that cannot exist in this event's type
    (catalogue types only), with a suggestion: a subscription saved before paths were checked
    shows its typo here.

    The signature shown is real (made with the live secrets at this second, for webhook-id
    ``msg_preview``); nothing is sent. Raises ValidationError for an event publish() would
    refuse (schema, id; PayloadTooLarge over WEBHOOKS_MAX_PAYLOAD_BYTES) or a mapping that
    fails on it.
    """
    from .transport import USER_AGENT

    from .transform.paths import path_problems

    envelope = _envelope(raw_event, sample_type)
    problems = [f"{where}: {sentence}" for where, sentences in path_problems(sub.transform, [envelope["type"]]).items()
                for sentence in sentences]
    reason, body, extra = _body_and_headers(sub, envelope)
    if reason is not None:
        return {"accepted": False, "reason": reason, "body": None, "headers": {}, "problems": problems}
    headers = {**extra, **signing.signed_headers(sub.signing_secrets(), "msg_preview", body), "content-type": "application/json",
               "content-length": str(len(body)), "user-agent": USER_AGENT}
    return {"accepted": True, "reason": None, "body": body.decode("utf-8"), "headers": headers, "problems": problems}


def send_test(sub: Subscription) -> dict[str, Any]:
    """Send one ``webhook.test`` event to ``sub`` now, through the same mapping, signing,
    URL guard and transport as a real delivery; log the attempt; no retries.
    Returns {"ok", "status", "error", "duration_ms", "delivery_id"}."""
    from .delivery import get_transport
    from .transport import OutgoingRequest

    envelope = events.build_envelope("webhook.test", {"message": f"Test delivery to {sub.id}"})
    # The filter is not applied (a test must reach the endpoint); the mapping is.
    from .producer import _transform_for

    t = _transform_for(sub)
    body = events.serialize(envelope) if t is None else t.body(envelope)
    extra = {} if t is None else dict(t.headers())
    did = new_id("msg")
    status: int | None = None
    error: str | None = None
    started = time.time()
    try:
        headers = {**extra, **signing.signed_headers(sub.signing_secrets(), did, body), "content-type": "application/json"}
        resp = get_transport().send(OutgoingRequest(url=sub.url, body=body, headers=headers))
        status = resp.status
        ok = classify(status) is Verdict.DELIVERED
        if not ok:
            error = f"endpoint answered {status}"
    except DeliveryError as exc:
        ok, error = False, f"{exc.kind}: {exc}"
    duration_ms = (time.time() - started) * 1000
    attempt = Attempt(did, sub.id, 1, started, round(duration_ms, 2), status,
                      None if ok else (f"http_{status}" if status else error), "delivered" if ok else "failed")
    get_store().record_test_send(attempt, account=sub.account, event_id=envelope["id"], ok=ok, error=error)
    return {"ok": ok, "status": status, "error": error, "duration_ms": round(duration_ms, 1), "delivery_id": did}
