"""Mappings: pick, rename, combine, split, join and convert fields into the body sent."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from webhooks.transform import TransformError, compile_spec


def event(**data: Any) -> dict[str, Any]:
    return {"id": "evt_1", "type": "conversation.ended", "timestamp": "2026-11-26T10:00:00+00:00", "data": data}


def mapped(mapping: dict[str, Any], envelope: dict[str, Any]) -> Any:
    return json.loads(compile_spec({"mapping": mapping}).body(envelope))


def refused(mapping: Any) -> dict[str, list[str]]:
    with pytest.raises(TransformError) as caught:
        compile_spec({"mapping": mapping})
    return caught.value.errors


def test_nested_output_objects_and_list_paths() -> None:
    body = mapped(
        {"contact": {"email": "data.visitor.email", "tags": "data.tags"}, "first_tag": "data.tags[0]", "id": "id"},
        event(visitor={"email": "a@b.c"}, tags=["x", "y"]),
    )
    assert body == {"contact": {"email": "a@b.c", "tags": ["x", "y"]}, "first_tag": "x", "id": "evt_1"}


def test_output_keeps_the_mapping_order() -> None:
    raw = compile_spec({"mapping": {"z": "id", "a": "type"}}).body(event())
    assert raw == b'{"z":"evt_1","a":"conversation.ended"}'


def test_missing_fields_are_null_unless_a_default_is_given() -> None:
    body = mapped({"email": "data.visitor.email", "phone": {"path": "data.visitor.phone", "default": "n/a"}}, event())
    assert body == {"email": None, "phone": "n/a"}


def test_split_a_name_into_first_and_last() -> None:
    mapping = {
        "first": {"path": "data.visitor.name", "split": " ", "index": 0},
        "last": {"path": "data.visitor.name", "split": " ", "index": -1},
        "middle": {"path": "data.visitor.name", "split": " ", "index": 5, "default": ""},
        "parts": {"path": "data.visitor.name", "split": " "},
    }
    body = mapped(mapping, event(visitor={"name": "Jane Q Smith"}))
    assert body == {"first": "Jane", "last": "Smith", "middle": "", "parts": ["Jane", "Q", "Smith"]}


def test_dates_are_converted_in_format_and_zone() -> None:
    mapping = {
        "day": {"path": "timestamp", "format_date": "%Y-%m-%d"},
        "tokyo": {"path": "data.ended_at", "format_date": "%Y-%m-%d %H:%M %Z", "tz": "Asia/Tokyo"},
        "expr": "format_date(data.ended_at, '%H:%M', 'Europe/London')",
        "naive_is_utc": {"path": "data.naive", "format_date": "%H:%M%z", "tz": "UTC"},
    }
    body = mapped(mapping, event(ended_at="2026-11-26T23:30:00Z", naive="2026-11-26T08:00:00"))
    assert body == {"day": "2026-11-26", "tokyo": "2026-11-27 08:30 JST", "expr": "23:30", "naive_is_utc": "08:00+0000"}


def test_a_bad_date_in_the_data_is_our_error_naming_the_field() -> None:
    transform = compile_spec({"mapping": {"when": {"path": "data.ended_at", "format_date": "%Y"}}})
    with pytest.raises(TransformError) as caught:
        transform.body(event(ended_at="yesterday"))
    assert caught.value.errors == {"mapping.when": ["format_date(): value is not an ISO-8601 date-time"]}


def test_combine_fields_with_a_template_and_constants() -> None:
    mapping = {
        "title": {"template": "Chat with {data.visitor.name} on {data.page_url}"},
        "source": {"const": {"system": "chat", "version": 2}},
    }
    body = mapped(mapping, event(visitor={"name": "Jane"}, page_url="https://shop.example/pricing"))
    assert body == {"title": "Chat with Jane on https://shop.example/pricing", "source": {"system": "chat", "version": 2}}


def test_join_a_transcript_three_ways() -> None:
    transcript = [{"author": "Jane", "text": "hi"}, {"author": "Sam", "text": "hello 👋"}, {"author": "Bot"}]
    mapping = {
        "rule": {"join": "\n", "path": "data.transcript", "item": "{author}: {text}"},
        "function": "transcript_text(data.transcript)",
        "jmespath": "join(`\"\\n\"`, data.transcript[?text].join(': ', [author, text]))",
        "texts": {"join": " | ", "path": "data.transcript[].text"},
    }
    body = mapped(mapping, event(transcript=transcript))
    assert body["rule"] == "Jane: hi\nSam: hello 👋\nBot: "
    assert body["function"] == body["jmespath"] == "Jane: hi\nSam: hello 👋"
    assert body["texts"] == "hi | hello 👋"


def test_join_on_an_empty_or_missing_transcript() -> None:
    mapping = {"notes": {"join": "\n", "path": "data.transcript", "item": "{author}: {text}", "default": "(none)"}}
    assert mapped(mapping, event(transcript=[])) == {"notes": ""}
    assert mapped(mapping, event()) == {"notes": "(none)"}


def test_wrong_types_in_the_data_are_errors_not_silent_nulls() -> None:
    transform = compile_spec({"mapping": {"notes": {"join": "\n", "path": "data.transcript"}}})
    with pytest.raises(TransformError) as caught:
        transform.body(event(transcript="not a list"))
    assert caught.value.errors == {"mapping.notes": ["join needs a list, got str"]}


def test_score_as_string_passes_through_as_is() -> None:
    assert mapped({"score": "data.score"}, event(score="1")) == {"score": "1"}


@pytest.mark.parametrize(
    ("mapping", "where", "fragment"),
    [
        ({"a": 1}, "mapping.a", "for a constant use"),
        ({"a": None}, "mapping.a", "not NoneType"),
        ({"a": {"path": "x", "formt_date": "%Y"}}, "mapping.a", "unknown key(s) 'formt_date'"),
        ({"a": {"const": 1, "path": "x"}}, "mapping.a", "exactly one of"),
        ({"a": {"join": ","}}, "mapping.a", "needs a 'path'"),
        ({"a": {"path": "x", "tz": "UTC"}}, "mapping.a", "'tz' goes with 'format_date'"),
        ({"a": {"path": "x", "format_date": "%Y", "tz": "Mars/Olympus"}}, "mapping.a", "unknown time zone"),
        ({"a": {"path": "x", "index": 0}}, "mapping.a", "goes with 'split'"),
        ({"a": {"path": "x", "split": ""}}, "mapping.a", "'split' must be non-empty"),
        ({"a": {"path": "x", "split": " ", "format_date": "%Y"}}, "mapping.a", "either 'split' or 'format_date'"),
        ({"a": {"const": float("nan")}}, "mapping.a", "plain JSON"),
        ({"a": {"const": "x" * 20_000}}, "mapping.a", "over 16384 characters"),
        ({"a": {"b": {"c": "data.x ]"}}}, "mapping.a.b.c", "^"),
        ({"a": {"template": "{nope(x)}"}}, "mapping.a", "unknown function nope()"),
        ({"": "id"}, "mapping", "output field names"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(mapping: dict[str, Any], where: str, fragment: str) -> None:
    errors = refused(mapping)
    assert list(errors) == [where]
    assert fragment in errors[where][0]


def test_mapping_size_and_depth_are_capped() -> None:
    assert "at most 200 fields" in refused({f"f{i}": "id" for i in range(201)})["mapping.f200"][0]
    deep: dict[str, Any] = {"leaf": "id"}
    for _ in range(9):
        deep = {"n": deep}
    assert any("nested more than 8" in m[0] for m in refused(deep).values())


def test_mapping_must_be_an_object() -> None:
    assert refused(["id"]) == {"mapping": ["must be an object, not list"]}


def test_a_body_over_the_size_cap_is_refused() -> None:
    # Given a mapping that repeats a 100 KB field three times
    transform = compile_spec({"mapping": {"a": "data.big", "b": "data.big", "c": "data.big"}})
    with pytest.raises(TransformError) as caught:
        transform.body(event(big="x" * 100_000))
    assert caught.value.errors == {"mapping": ["the body is over 262144 bytes"]}


def test_a_nan_in_the_data_is_our_error() -> None:
    with pytest.raises(TransformError):
        compile_spec({"mapping": {"a": "data.x"}}).body(event(x=float("nan")))


def test_mapping_a_50kb_transcript_is_fast() -> None:
    line = "Could you tell me about the premium plan and its pricing please? "
    transcript = [{"author": f"P{i % 2}", "role": "visitor", "text": line, "sent_at": "2026-11-26T09:00:00Z"}
                  for i in range(50_000 // len(line))]
    transform = compile_spec({"mapping": {
        "notes": {"join": "\n", "path": "data.transcript", "item": "{author}: {text}"},
        "email": "data.visitor.email",
    }})
    envelope = event(transcript=transcript, visitor={"email": "a@b.c"})
    started = time.perf_counter()
    bodies = {transform.body(envelope) for _ in range(5)}
    per_call_s = (time.perf_counter() - started) / 5
    assert len(bodies) == 1 and len(next(iter(bodies))) > 50_000
    assert per_call_s < 0.25
