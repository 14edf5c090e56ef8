"""Realistic example data for every event type of the catalogue: the demo, `preview
--sample`, `send-test` and the tests use it. Plain data; events.sample() hands out copies."""
from __future__ import annotations

from typing import Any

__all__ = ["SAMPLES"]

_AGENT = {"id": "agt_42", "name": "Maya Chen", "email": "maya@support.example.com"}
_VISITOR = {"id": "vis_7f3a", "name": "Jordan Lee", "email": "jordan.lee@example.org"}
SAMPLES: dict[str, dict[str, Any]] = {
    "conversation.started": {
        "conversation_id": "conv_8d2k1",
        "visitor": _VISITOR,
        "page_url": "https://shop.example.com/pricing?plan=pro",
        "pre_chat": {"topic": "Billing", "order_number": 10452, "newsletter": True, "products": ["Pro", "Add-on"]},
        "started_at": "2024-05-01T09:15:02Z",
    },
    "conversation.ended": {
        "conversation_id": "conv_8d2k1",
        "transcript": [
            {"author": "Jordan Lee", "role": "visitor", "text": "Hi, I was charged twice for May.", "sent_at": "2024-05-01T09:15:10Z"},
            {"author": "Helper", "role": "bot", "text": "Connecting you with an agent…", "sent_at": "2024-05-01T09:15:11Z"},
            {"author": "Maya Chen", "role": "agent", "text": "Sorry about that! I've refunded the duplicate charge.", "sent_at": "2024-05-01T09:17:45Z"},
            {"author": "system", "role": "system", "text": "Conversation closed by agent.", "sent_at": "2024-05-01T09:19:00Z"},
        ],
        "duration_s": 238,
        "tags": ["billing", "refund"],
        "agent": _AGENT,
        "visitor": _VISITOR,
        "ended_at": "2024-05-01T09:19:00Z",
    },
    "message.sent": {
        "conversation_id": "conv_8d2k1",
        "message_id": "m_0003",
        "author": "Maya Chen",
        "role": "agent",
        "text": "Sorry about that! I've refunded the duplicate charge.",
        "sent_at": "2024-05-01T09:17:45Z",
    },
    "rating.submitted": {
        "conversation_id": "conv_8d2k1",
        "score": 5,
        "comment": "Quick and friendly, thanks Maya!",
        "topic": "Billing",
        "visitor": _VISITOR,
        "agent": _AGENT,
    },
    "conversation.assigned": {
        "conversation_id": "conv_8d2k1",
        "agent": _AGENT,
        "previous_agent": {"id": "agt_7", "name": "Sam Ortiz"},
        "reason": "transferred",
    },
    "webhook.test": {"message": "This is a test event from chat-webhooks."},
    "custom.example": {"order_id": "ord_1029", "total": 49.9, "currency": "EUR", "items": [{"sku": "PRO-1", "qty": 1}]},
}
