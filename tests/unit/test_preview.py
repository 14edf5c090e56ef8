"""preview(): what a subscription would be sent for one event, decided as producer and worker decide."""
from __future__ import annotations

import json
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from webhooks import events, signing
from webhooks.errors import ValidationError
from webhooks.preview import preview
from webhooks.subscriptions import Subscription
from webhooks.transform import TransformError
from webhooks.transport import USER_AGENT

SLACK = {
    "filter": "data.score <= `2`",
    "template": "slack",
    "text": "Low-satisfaction chat ended: Visitor {data.visitor.name}, Topic: {data.topic}, Rating: {data.score} star",
    "headers": {"X-Source": "chat-webhooks"},
}


def subscription(transform: dict[str, Any] | None, events_: tuple[str, ...] = ("rating.submitted",)) -> Subscription:
    return Subscription(id=f"sub_preview{abs(hash(json.dumps(transform))) % 10**8}", account="acct-preview",
                        url="https://hooks.example.com/x", events=events_, secret=signing.generate_secret(),
                        transform=transform, updated_at=1.0)


def low_rating() -> dict[str, Any]:
    return {"type": "rating.submitted", "data": {**events.sample("rating.submitted"), "score": 1, "visitor": {"name": "Jane Smith"}}}


def test_a_passing_event_shows_the_mapped_body_and_every_header_with_a_signature_over_that_body() -> None:
    # Given a Slack subscription for low ratings with one extra header
    sub = subscription(SLACK)
    # When a 1-star rating is previewed
    result = preview(sub, raw_event=low_rating())
    # Then it passes, the body is the Slack message and the signature verifies over exactly that body
    assert result["accepted"] is True and result["reason"] is None
    assert json.loads(result["body"]) == {"text": "Low-satisfaction chat ended: Visitor Jane Smith, Topic: Billing, Rating: 1 star"}
    headers = result["headers"]
    assert headers["X-Source"] == "chat-webhooks"
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(result["body"].encode()))
    assert headers["user-agent"] == USER_AGENT
    assert headers["webhook-id"] == "msg_preview"
    lowered = {k.lower(): v for k, v in headers.items()}
    assert Webhook(sub.signing_secrets()[0]).verify(result["body"].encode(), lowered) == json.loads(result["body"])


def test_an_event_the_filter_refuses_is_not_sent_and_says_why() -> None:
    # Given the same subscription, When the sample (a 5-star rating) is previewed
    result = preview(subscription(SLACK), sample_type="rating.submitted")
    # Then it does not pass, with no body and no headers
    assert result == {"accepted": False, "reason": "the filter does not match this event", "body": None, "headers": {}, "problems": []}


def test_an_event_type_the_subscription_does_not_take_is_not_sent_even_without_a_filter() -> None:
    # Given a subscription with no transform for ratings only
    sub = subscription(None)
    # When a conversation.ended sample is previewed
    result = preview(sub, sample_type="conversation.ended")
    # Then it is refused by its type, naming both
    assert result["accepted"] is False
    assert result["reason"] == "the subscription takes rating.submitted, not conversation.ended"


def test_without_a_transform_the_body_is_the_envelope_and_an_envelope_file_keeps_its_id() -> None:
    # Given a plain subscription and an event file that is a whole envelope
    sub = subscription(None, ("*",))
    envelope = events.build_envelope("message.sent", events.sample("message.sent"), event_id="evt_fixed1")
    # When it is previewed
    result = preview(sub, raw_event=envelope)
    # Then the body is the serialized envelope with the same id and data (the timestamp is now)
    body = json.loads(result["body"])
    assert body["id"] == "evt_fixed1" and body["data"] == envelope["data"] and body["type"] == "message.sent"
    assert result["body"].encode() == events.serialize(body)


@pytest.mark.parametrize("raw", [[], {"type": "rating.submitted"}, {"data": {}}, "text"])
def test_an_event_file_without_type_and_data_is_refused(raw: Any) -> None:
    with pytest.raises(ValidationError, match="'type' and 'data'"):
        preview(subscription(None), raw_event=raw)


def test_event_data_that_the_catalogue_refuses_is_refused_by_field() -> None:
    with pytest.raises(ValidationError, match="score"):
        preview(subscription(None), raw_event={"type": "rating.submitted", "data": {"conversation_id": "c", "score": 9}})


def test_a_mapping_that_fails_on_the_event_raises_naming_the_field() -> None:
    # Given a mapping that formats a field as a date, and an event where it is a number
    sub = subscription({"mapping": {"when": {"path": "data.score", "format_date": "%Y"}}})
    # When previewed, Then the error names the mapping field
    with pytest.raises(TransformError, match="mapping.when"):
        preview(sub, raw_event=low_rating())


def test_the_cli_json_vocabulary_types_stored_text_and_leaves_a_users_own_json_alone() -> None:
    from webhooks.cli.output import typed, typed_delivery

    # A delivery record as Redis returns it: all text
    record = {"status": "delivered", "attempts": "2", "retries": "1", "last_status": "200", "last_error": "",
              "created": "1796105247.85", "updated": "1796105248.5", "type": "conversation.ended"}
    assert typed_delivery(record) == {"status": "delivered", "attempts": 2, "retries": 1, "last_status": 200,
                                      "last_error": None, "created": "2026-12-01T06:07:27.850Z",
                                      "updated": "2026-12-01T06:07:28.500Z", "type": "conversation.ended"}
    # A subscription: times as ISO, booleans kept, the transform (the user's JSON) untouched
    sub = {"enabled": True, "created_at": 0.0, "rotation_grace_until": None,
           "transform": {"mapping": {"created": {"const": 1796105247}, "attempts": "data.n"}}}
    assert typed(sub) == {"enabled": True, "created_at": "1970-01-01T00:00:00.000Z", "rotation_grace_until": None,
                          "transform": {"mapping": {"created": {"const": 1796105247}, "attempts": "data.n"}}}
