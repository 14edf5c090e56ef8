"""Filters: which events a subscription gets, on awkward data."""
from __future__ import annotations

import time
from typing import Any

import pytest

from webhooks.transform import compile_spec


def envelope(event_type: str = "rating.submitted", **data: Any) -> dict[str, Any]:
    return {"id": "evt_1", "type": event_type, "timestamp": "2026-11-26T10:00:00+00:00", "data": data}


def accepts(filter_: str, event: dict[str, Any]) -> bool:
    return compile_spec({"filter": filter_}).accepts(event)


LOW_SCORE = "data.score <= `2`"


@pytest.mark.parametrize(("score", "expected"), [(1, True), (2, True), (3, False), (5, False)])
def test_score_at_most_two(score: int, expected: bool) -> None:
    assert accepts(LOW_SCORE, envelope(score=score)) is expected


@pytest.mark.parametrize("score", ["1", None, True, [1], {"v": 1}])
def test_score_of_the_wrong_type_does_not_match_and_does_not_raise(score: Any) -> None:
    # Given a numeric filter and a score that is not a number
    # Then the filter simply does not match
    assert accepts(LOW_SCORE, envelope(score=score)) is False


def test_missing_field_does_not_match() -> None:
    assert accepts(LOW_SCORE, envelope(comment="no score")) is False
    assert accepts("contains(data.tags, 'sales inquiry')", envelope("conversation.ended")) is False


def test_a_filter_failing_at_evaluation_does_not_match() -> None:
    # Given a filter that raises a type error on this data (contains() over a number)
    # Then the event is not delivered and nothing is raised
    assert accepts("contains(data.score, 'x')", envelope(score=1)) is False


def test_tags_contain_sales_inquiry() -> None:
    filter_ = "contains(data.tags, 'sales inquiry')"
    assert accepts(filter_, envelope("conversation.ended", tags=["sales inquiry", "vip"])) is True
    assert accepts(filter_, envelope("conversation.ended", tags=["Sales Inquiry"])) is False
    assert accepts(filter_, envelope("conversation.ended", tags=[])) is False


def test_keywords_in_a_message_case_insensitively() -> None:
    filter_ = "type == 'message.sent' && contains_any(data.text, ['refund', 'cancel'])"
    assert accepts(filter_, envelope("message.sent", text="I want a REFUND now")) is True
    assert accepts(filter_, envelope("message.sent", text="thanks!")) is False
    assert accepts(filter_, envelope("message.sent")) is False


def test_keywords_anywhere_in_a_transcript() -> None:
    filter_ = "contains_any(data.transcript[].text, ['cancel'])"
    transcript = [{"author": "A", "text": "hello"}, {"author": "B", "text": "I'd like to Cancel"}]
    assert accepts(filter_, envelope("conversation.ended", transcript=transcript)) is True
    assert accepts(filter_, envelope("conversation.ended", transcript=[])) is False


def test_empty_lists_and_objects_are_falsy_but_zero_is_truthy() -> None:
    assert accepts("data.tags", envelope(tags=[])) is False
    assert accepts("data.pre_chat", envelope(pre_chat={})) is False
    assert accepts("data.duration_s", envelope(duration_s=0)) is True


def test_unicode_emoji_and_right_to_left_text() -> None:
    assert accepts("contains_any(data.text, ['😡'])", envelope("message.sent", text="service 😡😡")) is True
    assert accepts("data.visitor.name == 'שרה כהן'", envelope(visitor={"name": "שרה כהן"})) is True
    assert accepts("contains_any(data.text, ['مرحبا'])", envelope("message.sent", text="!مرحبا بك")) is True


def test_no_filter_accepts_everything() -> None:
    assert compile_spec({}).accepts(envelope()) is True
    assert compile_spec({}).accepts({}) is True


def test_type_and_timestamp_are_visible_to_the_filter() -> None:
    filter_ = "type == 'conversation.ended' && timestamp >= '2026-11-01'"
    assert accepts(filter_, envelope("conversation.ended")) is True
    assert accepts(filter_, envelope("conversation.started")) is False


def big_transcript(total_chars: int = 50_000) -> list[dict[str, str]]:
    line = "I would like to know more about the premium plan and its pricing. "
    count = total_chars // len(line)
    return [
        {"author": f"Person {i % 2}", "role": "visitor", "text": line, "sent_at": "2026-11-26T09:00:00Z"}
        for i in range(count)
    ]


def test_a_50kb_transcript_is_filtered_quickly() -> None:
    # Given a keyword filter and a 50 KB transcript without the keyword
    transform = compile_spec({"filter": "contains_any(data.transcript[].text, ['refund', 'cancel'])"})
    event = envelope("conversation.ended", transcript=big_transcript())
    # When it is evaluated a few times
    started = time.perf_counter()
    results = {transform.accepts(event) for _ in range(20)}
    per_call_s = (time.perf_counter() - started) / 20
    # Then it never matches and stays far under the producer's tolerance
    assert results == {False}
    assert per_call_s < 0.05
