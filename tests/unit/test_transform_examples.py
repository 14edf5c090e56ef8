"""The four integrations of the issue, as transforms: CRM, helpdesk, analytics and Slack."""
from __future__ import annotations

import json
from typing import Any

from webhooks.events import serialize
from webhooks.transform import TransformSpec, compile_spec


def conversation_ended(**data: Any) -> dict[str, Any]:
    base = {
        "conversation_id": "conv_1",
        "transcript": [
            {"author": "Jane Smith", "role": "visitor", "text": "My invoice is wrong", "sent_at": "2026-11-26T09:50:00Z"},
            {"author": "Sam Lee", "role": "agent", "text": "Let me check that for you", "sent_at": "2026-11-26T09:51:00Z"},
        ],
        "duration_s": 600,
        "tags": ["billing", "needs follow-up"],
        "agent": {"id": "agt_1", "name": "Sam Lee", "email": "sam@example.com"},
        "visitor": {"id": "vis_1", "name": "Jane Smith", "email": "jane@example.com"},
        "ended_at": "2026-11-26T10:00:00Z",
    }
    base.update(data)
    return {"id": "evt_1", "type": "conversation.ended", "timestamp": "2026-11-26T10:00:00+00:00", "data": base}


def rating_submitted(score: Any) -> dict[str, Any]:
    return {
        "id": "evt_2",
        "type": "rating.submitted",
        "timestamp": "2026-11-26T10:05:00+00:00",
        "data": {"conversation_id": "conv_1", "score": score, "topic": "Billing", "visitor": {"name": "Jane Smith"}},
    }


CRM_SPEC = {
    "mapping": {
        "email": "data.visitor.email",
        "first_name": {"path": "data.visitor.name", "split": " ", "index": 0},
        "notes": {"join": "\n", "path": "data.transcript", "item": "{author}: {text}"},
        "assigned_to": "data.agent.name",
        "last_chat": {"path": "data.ended_at", "format_date": "%d/%m/%Y %H:%M", "tz": "America/New_York"},
        "source": {"const": "live chat"},
    }
}


def test_chat_to_crm_maps_contact_fields() -> None:
    # Given a CRM mapping
    transform = compile_spec(CRM_SPEC)
    # When an ended conversation is mapped
    body = json.loads(transform.body(conversation_ended()))
    # Then the contact fields are filled from the event, the date re-formatted in New York time
    assert body == {
        "email": "jane@example.com",
        "first_name": "Jane",
        "notes": "Jane Smith: My invoice is wrong\nSam Lee: Let me check that for you",
        "assigned_to": "Sam Lee",
        "last_chat": "26/11/2026 05:00",
        "source": "live chat",
    }
    assert transform.accepts(conversation_ended()) and not transform.is_identity


HELPDESK_SPEC = {
    "filter": "type == 'conversation.ended' && contains(data.tags, 'needs follow-up')",
    "mapping": {
        "subject": {"template": "Follow up: chat with {data.visitor.name}"},
        "requester": {"email": "data.visitor.email", "name": "data.visitor.name"},
        "description": "transcript_text(data.transcript)",
    },
}


def test_chat_to_helpdesk_only_tagged_conversations_with_transcript() -> None:
    # Given a helpdesk subscription filtered on the "needs follow-up" tag
    transform = compile_spec(HELPDESK_SPEC)
    # When tagged and untagged conversations end
    tagged, untagged = conversation_ended(), conversation_ended(tags=["billing"])
    # Then only the tagged one is accepted, and its ticket holds the transcript
    assert transform.accepts(tagged) is True
    assert transform.accepts(untagged) is False
    ticket = json.loads(transform.body(tagged))
    assert ticket["subject"] == "Follow up: chat with Jane Smith"
    assert ticket["requester"] == {"email": "jane@example.com", "name": "Jane Smith"}
    assert ticket["description"] == "Jane Smith: My invoice is wrong\nSam Lee: Let me check that for you"


def test_chat_to_analytics_without_spec_is_the_envelope_as_is() -> None:
    # Given no spec at all
    transform = compile_spec(None)
    envelope = conversation_ended()
    # When the body is built
    body = transform.body(envelope)
    # Then it is the compact JSON of the envelope, byte for byte what events.serialize gives
    assert transform.is_identity and transform.accepts(envelope)
    assert body == serialize(envelope)
    assert body == json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()
    assert transform.headers() == {}


SLACK_SPEC = TransformSpec(
    filter="type == 'rating.submitted' && data.score <= `2`",
    template="slack",
    text="Low-satisfaction chat ended: Visitor {data.visitor.name}, Topic: {data.topic}, Rating: {data.score} star",
)


def test_chat_to_slack_low_ratings_only_with_the_exact_sentence() -> None:
    # Given a Slack subscription for ratings of 2 or less
    transform = compile_spec(SLACK_SPEC)
    # When ratings of 1 and 4 arrive
    low, high = rating_submitted(1), rating_submitted(4)
    # Then only the low one goes, as {"text": ...} with the sentence exactly
    assert transform.accepts(low) is True
    assert transform.accepts(high) is False
    assert json.loads(transform.body(low)) == {
        "text": "Low-satisfaction chat ended: Visitor Jane Smith, Topic: Billing, Rating: 1 star"
    }
