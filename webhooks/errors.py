"""Every error chat-webhooks raises, split by what the caller does next.

    WebhooksError
    ├── ValidationError          bad input: tell the caller (names every bad field)
    │   ├── UnknownEventType     the event type is not in the catalogue
    │   ├── PayloadTooLarge      the envelope is over the size limit
    │   └── UrlRefused           the URL guard refused a URL (names the rule)
    ├── NotFound                 no such subscription / delivery / dead letter in this account
    ├── PublishError             Redis did not answer in time (says whether it may have enqueued)
    ├── ConfigurationError       the settings cannot work (the worker refuses to start)
    ├── EncryptionError          encrypted data and a missing or wrong WEBHOOKS_ENCRYPTION_KEY
    ├── SignatureError           receiver side: the webhook does not verify
    └── DeliveryError            one attempt to deliver failed (carries delivery id, host, status)
        ├── TransientDeliveryError   retry on schedule (timeouts, 5xx, 429, connection and TLS errors)
        └── PermanentDeliveryError   dead-letter at once (410, URL refused, mapping failed)

Errors carry context (ids, status, host), never secrets or payloads.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "WebhooksError",
    "ValidationError",
    "UnknownEventType",
    "PayloadTooLarge",
    "UrlRefused",
    "NotFound",
    "PublishError",
    "ConfigurationError",
    "EncryptionError",
    "SignatureError",
    "DeliveryError",
    "TransientDeliveryError",
    "PermanentDeliveryError",
]


class WebhooksError(Exception):
    """Base of every error this library raises on purpose."""


class ValidationError(WebhooksError):
    """Bad input. ``errors`` maps each bad field (dotted path) to its messages."""

    def __init__(self, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.errors: dict[str, Any] = errors or {}


class UnknownEventType(ValidationError):
    """The event type is neither in the catalogue nor a ``custom.<name>`` type."""


class PayloadTooLarge(ValidationError):
    """The serialized event is larger than ``WEBHOOKS_MAX_PAYLOAD_BYTES``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"event is {size} bytes, over the limit of {limit} bytes",
            {"data": [f"serialized size {size} > {limit} bytes"]},
        )
        self.size = size
        self.limit = limit


class UrlRefused(ValidationError):
    """The URL guard refused a URL; ``rule`` names the rule that refused it."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"URL refused ({rule}): {detail}", {"url": [f"{rule}: {detail}"]})
        self.rule = rule
        self.detail = detail


class NotFound(WebhooksError):
    """No such object in this account (another account's ids are not found either)."""


class PublishError(WebhooksError):
    """Redis did not answer ``publish()`` in time.

    ``event_id``: the event's id (generated before the call when the caller gave none).
    ``maybe_enqueued``: True when the enqueue may have happened anyway (a timeout while the
    script was in flight: Redis slow, not down); False when the connection failed before
    anything was sent. Either way, publishing again with ``event_id=`` enqueues exactly once.
    """

    def __init__(self, message: str, *, event_id: str | None = None, maybe_enqueued: bool = False) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.maybe_enqueued = maybe_enqueued


class ConfigurationError(WebhooksError):
    """The settings cannot work together; the message says which and why."""


class EncryptionError(WebhooksError):
    """Encrypted data met a missing or wrong ``WEBHOOKS_ENCRYPTION_KEY``."""


class SignatureError(WebhooksError):
    """Receiver side: the webhook's headers or signature do not verify."""


class DeliveryError(WebhooksError):
    """One delivery attempt failed.

    ``kind`` is a short machine-readable class ("http_500", "timeout", "connect",
    "tls", "redirect", "url_refused", ...); ``status`` the HTTP status if any.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "error",
        status: int | None = None,
        host: str | None = None,
        delivery_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.host = host
        self.delivery_id = delivery_id
        self.retry_after_s = retry_after_s


class TransientDeliveryError(DeliveryError):
    """Worth retrying on schedule."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help; the delivery goes to the dead-letter store."""
