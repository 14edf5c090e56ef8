"""Property tests: whatever the event or the spec text, only TransformError comes out."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhooks.transform import Transform, TransformError, compile_spec

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
known_keys = st.sampled_from(["visitor", "agent", "transcript", "score", "tags", "text", "name", "author", "ended_at"])
data = st.dictionaries(known_keys | st.text(max_size=6), json_values, max_size=6)
envelopes = st.fixed_dictionaries(
    {"id": st.text(max_size=10), "type": st.text(max_size=20) | st.sampled_from(["rating.submitted", "conversation.ended"]),
     "timestamp": st.text(max_size=30) | st.just("2026-11-26T10:00:00+00:00"), "data": data | json_values}
)

SPECS: list[dict[str, Any]] = [
    {},
    {"filter": "data.score <= `2`"},
    {"filter": "contains(data.tags, 'sales inquiry')"},
    {"filter": "contains_any(data.transcript[].text, ['refund', 'cancel']) || contains_any(data.text, 'x')"},
    {"filter": "type == 'rating.submitted' && !(data.score > `2`)", "template": "slack",
     "text": "Visitor {data.visitor.name}, Topic: {data.topic}, Rating: {data.score} star"},
    {"template": "teams", "text": "{data} {data.tags[0]} {length(data.text)}"},
    {"template": "discord", "text": "{to_string(data)} {upper(data.text)}"},
    {"mapping": {
        "email": "data.visitor.email",
        "first": {"path": "data.visitor.name", "split": " ", "index": 0},
        "notes": {"join": "\n", "path": "data.transcript", "item": "{author}: {text}"},
        "texts": {"join": ", ", "path": "data.tags"},
        "when": {"path": "data.ended_at", "format_date": "%Y-%m-%d", "tz": "Europe/London"},
        "when2": "format_date(timestamp, '%H:%M', 'UTC')",
        "summary": {"template": "{data.visitor.name || 'someone'} ({length(data.transcript || `[]`)})"},
        "transcript": "transcript_text(data.transcript)",
        "nested": {"x": {"const": [1, 2]}, "y": {"path": "data.score", "default": 0}},
        "all": "concat(data.text, data.score, lower(data.name))",
        "sorted": "sort_by(data.transcript, &to_string(author))",
    }},
]
TRANSFORMS = [compile_spec(spec) for spec in SPECS]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelope=envelopes)
def test_accepts_and_body_raise_only_transform_error(envelope: dict[str, Any]) -> None:
    for transform in TRANSFORMS:
        assert transform.accepts(envelope) in (True, False)
        try:
            body = transform.body(envelope)
        except TransformError:
            continue
        assert isinstance(body, bytes)


jmespath_alphabet = st.sampled_from(list("abcxyz@.*[]{}()|&!?<>=,:'`\"0123456789- _\\")) | st.characters()


def compile_only_transform_error(spec: dict[str, Any]) -> None:
    try:
        assert isinstance(compile_spec(spec), Transform)
    except TransformError:
        pass


@settings(max_examples=500, deadline=None)
@given(text=st.text(jmespath_alphabet, max_size=60) | st.text(max_size=1_100))
@pytest.mark.filterwarnings("ignore:deprecated string literal syntax:PendingDeprecationWarning")
def test_any_text_as_filter_compiles_or_raises_transform_error(text: str) -> None:
    compile_only_transform_error({"filter": text})
    compile_only_transform_error({"template": "text", "text": text})


@settings(max_examples=300, deadline=None)
@given(mapping=st.dictionaries(st.text(max_size=5), json_values | st.text(jmespath_alphabet, max_size=30), max_size=4)
       | json_values)
def test_any_data_as_mapping_compiles_or_raises_transform_error(mapping: Any) -> None:
    compile_only_transform_error({"mapping": mapping})


@settings(max_examples=200, deadline=None)
@given(rule=st.dictionaries(st.sampled_from(["path", "const", "template", "join", "default", "format_date", "tz",
                                               "split", "index", "item"]), json_values | st.text(jmespath_alphabet, max_size=20),
                            max_size=4))
def test_any_rule_object_compiles_or_raises_transform_error(rule: dict[str, Any]) -> None:
    compile_only_transform_error({"mapping": {"out": rule}})


@settings(max_examples=200, deadline=None)
@given(headers=st.dictionaries(st.text(max_size=10), st.text(max_size=10) | json_scalars, max_size=4) | json_values)
def test_any_headers_compile_or_raise_transform_error(headers: Any) -> None:
    compile_only_transform_error({"headers": headers})
