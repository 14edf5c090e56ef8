"""The event catalogue: every type validates its samples and names every bad field."""
from __future__ import annotations

import copy
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from webhooks import events
from webhooks.errors import PayloadTooLarge, UnknownEventType, ValidationError

ALL_TYPES = (*events.EVENT_TYPES, "custom.example")


def bad(event_type: str, data: Any) -> ValidationError:
    """Validate ``data`` expecting failure; return the error."""
    with pytest.raises(ValidationError) as info:
        events.validate(event_type, data)
    return info.value


# --- the catalogue -----------------------------------------------------------------------


def test_catalogue_lists_the_chat_types_and_the_test_type() -> None:
    assert set(events.EVENT_TYPES) == {
        "conversation.started",
        "conversation.ended",
        "message.sent",
        "rating.submitted",
        "conversation.assigned",
        "webhook.test",
    }


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_every_sample_validates_unchanged_and_is_json_ready(event_type: str) -> None:
    # Given the sample of a type
    data = events.sample(event_type)
    # When it is validated
    cleaned = events.validate(event_type, data)
    # Then it comes back equal and round-trips through the stdlib json
    assert cleaned == data
    assert json.loads(json.dumps(cleaned)) == cleaned


def test_sample_returns_a_fresh_copy() -> None:
    first = events.sample("conversation.ended")
    first["transcript"].clear()
    assert events.sample("conversation.ended")["transcript"]


@pytest.mark.parametrize(
    "event_type, expected",
    [
        ("conversation.ended", True),
        ("webhook.test", True),
        ("custom.order_paid", True),
        ("custom.Shop.order.v2", True),
        ("custom.", False),
        ("custom.bad name", False),
        ("custom.a..b", False),
        ("custom.trailing.", False),
        ("custom.é", False),
        ("conversation.unknown", False),
        ("", False),
    ],
)
def test_is_known_type(event_type: str, expected: bool) -> None:
    assert events.is_known_type(event_type) is expected


def test_is_known_type_is_false_for_non_strings() -> None:
    assert events.is_known_type(None) is False  # type: ignore[arg-type]


# --- unknown types -----------------------------------------------------------------------


def test_unknown_type_lists_the_valid_types() -> None:
    with pytest.raises(UnknownEventType) as info:
        events.validate("chat.exploded", {})
    for event_type in events.EVENT_TYPES:
        assert event_type in str(info.value)
    assert "custom.<name>" in str(info.value)
    assert list(info.value.errors) == ["type"]


@pytest.mark.parametrize("event_type", ["custom.bad name", "custom.", "custom.a-b", "custom.x" * 50])
def test_bad_custom_name_is_refused_on_the_type_field(event_type: str) -> None:
    with pytest.raises(UnknownEventType) as info:
        events.validate(event_type, {"a": 1})
    assert list(info.value.errors) == ["type"]
    assert "custom event" in str(info.value)


def test_sample_of_an_unknown_type_raises() -> None:
    with pytest.raises(UnknownEventType):
        events.sample("nope")


# --- bad data, each type -----------------------------------------------------------------


@pytest.mark.parametrize("event_type", ALL_TYPES)
@pytest.mark.parametrize("data", [None, [], "text", 3, [("a", 1)]])
def test_non_object_data_is_refused_for_every_type(event_type: str, data: Any) -> None:
    error = bad(event_type, data)
    assert error.errors == {"data": ["must be a JSON object"]}


@pytest.mark.parametrize(
    "event_type, missing",
    [
        ("conversation.started", {"conversation_id"}),
        ("conversation.ended", {"conversation_id"}),
        ("message.sent", {"conversation_id", "author", "role", "text"}),
        ("rating.submitted", {"conversation_id", "score"}),
        ("conversation.assigned", {"conversation_id", "agent", "reason"}),
        ("webhook.test", {"message"}),
    ],
)
def test_empty_data_names_every_required_field(event_type: str, missing: set[str]) -> None:
    error = bad(event_type, {})
    assert set(error.errors) == missing
    for field in missing:
        assert field in str(error)


def test_conversation_started_names_every_bad_field() -> None:
    # Given a start event with five different mistakes
    data = events.sample("conversation.started")
    data["visitor"]["email"] = "not-an-email"
    data["page_url"] = "ftp://files.example.com/x"
    data["pre_chat"] = {"topic": {"nested": "dict"}, "ok": "fine", "n": float("nan")}
    data["started_at"] = "2024-05-01T09:15:02"  # no offset
    data["referrer"] = "unexpected"
    # When validated, then each is named by its dotted path
    error = bad("conversation.started", data)
    assert set(error.errors) == {
        "visitor.email",
        "page_url",
        "pre_chat.topic.value",
        "pre_chat.n.value",
        "started_at",
        "referrer",
    }
    assert error.errors["referrer"] == ["Unknown field."]


def test_conversation_started_wrong_types() -> None:
    error = bad("conversation.started", {"conversation_id": 12, "visitor": "Jordan", "pre_chat": ["a"]})
    assert set(error.errors) == {"conversation_id", "visitor", "pre_chat"}


def test_conversation_ended_names_the_bad_transcript_entries_by_index() -> None:
    # Given a transcript whose 4th message has a bad role and 2nd a missing text
    data = events.sample("conversation.ended")
    data["transcript"][3]["role"] = "robot"
    del data["transcript"][1]["text"]
    data["transcript"][0]["sent_at"] = "yesterday"
    data["duration_s"] = -1
    data["tags"] = ["ok", 7]
    data["agent"] = {"name": "No Id"}
    # When validated
    error = bad("conversation.ended", data)
    # Then every bad field is named, with list indexes in the path
    assert set(error.errors) == {
        "transcript.3.role",
        "transcript.1.text",
        "transcript.0.sent_at",
        "duration_s",
        "tags.1",
        "agent.id",
    }
    assert "transcript.3.role" in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("duration", [True, 1.5, "10", None])
def test_duration_must_be_a_real_integer(duration: Any) -> None:
    data = events.sample("conversation.ended")
    data["duration_s"] = duration
    assert set(bad("conversation.ended", data).errors) == {"duration_s"}


def test_message_sent_refuses_the_system_role_and_unknown_fields() -> None:
    data = events.sample("message.sent")
    data["role"] = "system"
    data["html"] = "<b>hi</b>"
    assert set(bad("message.sent", data).errors) == {"role", "html"}


def test_message_text_has_a_length_limit() -> None:
    data = events.sample("message.sent")
    data["text"] = "x" * 20_001
    assert set(bad("message.sent", data).errors) == {"text"}


@pytest.mark.parametrize("score", [0, 6, -1, 3.0, "5", True])
def test_rating_score_must_be_1_to_5(score: Any) -> None:
    data = events.sample("rating.submitted")
    data["score"] = score
    assert set(bad("rating.submitted", data).errors) == {"score"}


@pytest.mark.parametrize("score", [1, 5])
def test_rating_score_bounds_are_inclusive(score: int) -> None:
    data = events.sample("rating.submitted")
    data["score"] = score
    assert events.validate("rating.submitted", data)["score"] == score


def test_rating_comment_and_nested_people() -> None:
    data = events.sample("rating.submitted")
    data["comment"] = "c" * 5_001
    data["visitor"]["email"] = "@nope"
    data["agent"]["email"] = "also bad"
    assert set(bad("rating.submitted", data).errors) == {"comment", "visitor.email", "agent.email"}


def test_rating_topic_is_optional_text_of_1_to_200_characters() -> None:
    # Given a rating with its conversation's topic, one without, and two with a bad topic
    with_topic = events.sample("rating.submitted")
    without = {k: v for k, v in with_topic.items() if k != "topic"}
    # Then the topic is kept, its absence is fine, and empty or over-long text is refused by name
    assert events.validate("rating.submitted", with_topic)["topic"] == "Billing"
    assert "topic" not in events.validate("rating.submitted", without)
    for topic in ("", "t" * 201, 3):
        assert set(bad("rating.submitted", {**with_topic, "topic": topic}).errors) == {"topic"}


def test_conversation_assigned_reason_and_previous_agent() -> None:
    data = events.sample("conversation.assigned")
    data["reason"] = "stolen"
    data["previous_agent"] = {"id": "a1"}
    assert set(bad("conversation.assigned", data).errors) == {"reason", "previous_agent.name"}


def test_webhook_test_needs_a_string_message() -> None:
    assert set(bad("webhook.test", {"message": 5}).errors) == {"message"}


# --- custom events -----------------------------------------------------------------------


def test_custom_event_accepts_any_json_object_and_copies_it() -> None:
    data = {"a": [1, 2.5, None, True, {"b": "ü"}], "c": {}}
    cleaned = events.validate("custom.shop.order_paid", data)
    assert cleaned == data
    data["a"].append("later")
    assert cleaned["a"] == [1, 2.5, None, True, {"b": "ü"}]


def test_custom_event_names_every_non_json_value() -> None:
    data = {"when": datetime.now(timezone.utc), "nested": {"n": float("inf"), 3: "int key"}, "items": [1, {2, 3}]}
    error = bad("custom.order", data)
    assert set(error.errors) == {"when", "nested.n", "nested.3", "items.1"}


def test_custom_event_refuses_absurd_nesting_without_recursion_error() -> None:
    data: dict[str, Any] = {}
    node = data
    for _ in range(5_000):
        node["x"] = {}
        node = node["x"]
    error = bad("custom.deep", data)
    assert len(error.errors) == 1
    assert "nested deeper" in next(iter(error.errors.values()))[0]


def test_lone_surrogates_are_refused() -> None:
    assert set(bad("webhook.test", {"message": "bad \ud800 text"}).errors) == {"data"}


# --- size and speed ----------------------------------------------------------------------


def big_transcript(target_bytes: int) -> dict[str, Any]:
    """A conversation.ended payload of about ``target_bytes`` of JSON."""
    data = events.sample("conversation.ended")
    start = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
    messages: list[dict[str, str]] = []
    data["transcript"] = messages
    i = 0
    while len(events.serialize({"data": data})) < target_bytes:
        messages.append(
            {
                "author": "Maya Chen" if i % 2 else "Jordan Lee",
                "role": "agent" if i % 2 else "visitor",
                "text": f"Message {i}: " + "lorem ipsum dolor sit amet " * 3,
                "sent_at": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            }
        )
        i += 1
    return data


def test_a_50kb_transcript_validates_fast() -> None:
    # Given a ~50 KB transcript
    data = big_transcript(50_000)
    assert len(events.serialize({"data": data})) >= 50_000
    # When validated
    started = time.perf_counter()
    cleaned = events.validate("conversation.ended", data)
    elapsed = time.perf_counter() - started
    # Then it passes unchanged, in well under a request's budget
    assert cleaned == data
    assert elapsed < 0.5


def test_check_size() -> None:
    events.check_size(b"x" * 10, 10)
    with pytest.raises(PayloadTooLarge) as info:
        events.check_size(b"x" * 11, 10)
    assert (info.value.size, info.value.limit) == (11, 10)


# --- envelope and serialization ----------------------------------------------------------


def test_envelope_shape() -> None:
    # Given a fixed clock
    now = datetime(2024, 5, 1, 9, 19, 0, 250_000, tzinfo=timezone.utc)
    # When an envelope is built
    envelope = events.build_envelope("rating.submitted", events.sample("rating.submitted"), now=now)
    # Then it has exactly the four keys, a fresh evt_ id and a UTC timestamp
    assert list(envelope) == ["id", "type", "timestamp", "data"]
    assert envelope["id"].startswith("evt_")
    assert envelope["type"] == "rating.submitted"
    assert envelope["timestamp"] == "2024-05-01T09:19:00.250Z"
    assert envelope["data"] == events.sample("rating.submitted")


def test_envelope_timestamp_is_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=2))
    envelope = events.build_envelope("webhook.test", {"message": "hi"}, now=datetime(2024, 5, 1, 11, 0, tzinfo=paris))
    assert envelope["timestamp"] == "2024-05-01T09:00:00.000Z"


def test_envelope_ids_are_unique_by_default() -> None:
    ids = {events.build_envelope("webhook.test", {"message": "hi"})["id"] for _ in range(50)}
    assert len(ids) == 50


@pytest.mark.parametrize("event_id", ["evt_abc", "order-1029", "a" * 100])
def test_envelope_accepts_a_callers_id(event_id: str) -> None:
    assert events.build_envelope("webhook.test", {"message": "hi"}, event_id=event_id)["id"] == event_id


@pytest.mark.parametrize("event_id", ["", "a" * 101, "evt abc", "evt_ü", "x/y", 42])
def test_envelope_refuses_a_bad_id(event_id: Any) -> None:
    with pytest.raises(ValidationError) as info:
        events.build_envelope("webhook.test", {"message": "hi"}, event_id=event_id)
    assert list(info.value.errors) == ["id"]


def test_envelope_validates_data() -> None:
    with pytest.raises(ValidationError) as info:
        events.build_envelope("rating.submitted", {"conversation_id": "c", "score": 9})
    assert set(info.value.errors) == {"score"}


def test_serialize_is_compact_utf8_and_deterministic() -> None:
    # Given two equal envelopes built with keys in a different order
    envelope = events.build_envelope("webhook.test", {"message": "héllo ✓"}, event_id="evt_1")
    reordered = dict(reversed(list(copy.deepcopy(envelope).items())))
    # When serialized
    body = events.serialize(envelope)
    # Then the bytes are identical, compact, and raw UTF-8 (not \\u escapes)
    assert body == events.serialize(reordered)
    assert b", " not in body and b": " not in body
    assert "héllo ✓".encode() in body
    assert json.loads(body.decode("utf-8")) == envelope


def test_serialize_refuses_non_json() -> None:
    with pytest.raises(ValidationError):
        events.serialize({"data": {"x": float("nan")}})
    with pytest.raises(ValidationError):
        events.serialize({"data": {"x": object()}})


def test_public_names_exist() -> None:
    assert all(hasattr(events, name) for name in events.__all__)
