"""chat-webhooks: signed, retried, dead-lettered webhook delivery for live-chat platforms.

    import webhooks
    sub = webhooks.subscriptions.create(account="acme", url="https://crm.example.com/hook",
                                        events=["conversation.ended"])
    event = webhooks.publish("acme", "conversation.ended", {...})
    webhooks.verify(secret, body, headers)     # for receivers; raises webhooks.SignatureError
"""
from __future__ import annotations

from . import subscriptions
from .errors import (
    ConfigurationError,
    DeliveryError,
    EncryptionError,
    NotFound,
    PayloadTooLarge,
    PermanentDeliveryError,
    PublishError,
    SignatureError,
    StoreUnavailable,
    TransientDeliveryError,
    UnknownEventType,
    UrlRefused,
    ValidationError,
    WebhooksError,
)
from .producer import PublishedEvent, publish
from .signing import verify

__version__ = "0.1.0"

__all__ = [
    "publish",
    "PublishedEvent",
    "verify",
    "subscriptions",
    "WebhooksError",
    "ValidationError",
    "UnknownEventType",
    "PayloadTooLarge",
    "UrlRefused",
    "NotFound",
    "PublishError",
    "StoreUnavailable",
    "ConfigurationError",
    "EncryptionError",
    "SignatureError",
    "DeliveryError",
    "TransientDeliveryError",
    "PermanentDeliveryError",
]
