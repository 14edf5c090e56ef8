"""Message templates: placeholders, escapes and the Slack, Teams, Discord and text presets."""
from __future__ import annotations

import json
from typing import Any

import pytest

from webhooks.transform import TransformError, compile_spec

RATING = {
    "id": "evt_1",
    "type": "rating.submitted",
    "timestamp": "2026-11-26T10:00:00+00:00",
    "data": {"score": 1, "comment": "Slow <!channel> & rude", "visitor": {"name": "Jane Smith"}, "tags": ["a", "b"]},
}


def render(preset: str, text: str, event: dict[str, Any] = RATING) -> Any:
    return json.loads(compile_spec({"template": preset, "text": text}).body(event))


def test_text_preset_fills_placeholders() -> None:
    assert render("text", "{data.visitor.name} gave {data.score}") == {"text": "Jane Smith gave 1"}


def test_missing_values_render_empty_and_fallbacks_use_jmespath_or() -> None:
    assert render("text", "Topic: [{data.topic}]") == {"text": "Topic: []"}
    assert render("text", "Topic: {data.topic || 'unknown'}") == {"text": "Topic: unknown"}


def test_values_render_as_json_text() -> None:
    body = render("text", "{data.tags} {`true`} {`1.5`} {data.visitor}")
    assert body == {"text": '["a","b"] true 1.5 {"name":"Jane Smith"}'}


def test_double_braces_are_literal_braces() -> None:
    assert render("text", "{{literal}} {data.score} }}") == {"text": "{literal} 1 }"}


def test_placeholders_may_hold_braces_and_quoted_braces() -> None:
    assert render("text", "{data.visitor.{n: name}.n} {'}'}") == {"text": "Jane Smith }"}


def test_slack_escapes_values_but_not_the_template() -> None:
    # Given a comment trying to ping the channel, and a template with its own Slack link
    body = render("slack", "<https://example.com|Chat>: {data.comment}")
    # Then the comment is escaped and the link is kept
    assert body == {"text": "<https://example.com|Chat>: Slow &lt;!channel&gt; &amp; rude"}


def test_discord_sends_content_with_mentions_off_and_cuts_at_2000() -> None:
    event = {**RATING, "data": {**RATING["data"], "comment": "@everyone " + "x" * 3000}}
    body = render("discord", "{data.comment}", event)
    assert body["allowed_mentions"] == {"parse": []}
    assert len(body["content"]) == 2000 and body["content"].endswith("…")


def test_teams_sends_an_adaptive_card_message() -> None:
    body = render("teams", "Rating {data.score}")
    attachment = body["attachments"][0]
    assert body["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["type"] == "AdaptiveCard"
    assert attachment["content"]["body"] == [{"type": "TextBlock", "text": "Rating 1", "wrap": True}]


def test_unicode_survives_unescaped_in_the_bytes() -> None:
    event = {**RATING, "data": {"visitor": {"name": "שרה 😀"}}}
    raw = compile_spec({"template": "text", "text": "{data.visitor.name}"}).body(event)
    assert raw == '{"text":"שרה 😀"}'.encode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi {data.name", "placeholder opened at column 3 is never closed"),
        ("Hi }", "single '}' at column 3; write '}}' for a literal brace"),
        ("Hi {}", "empty placeholder at column 3"),
        ("Hi { }", "empty placeholder at column 3"),
    ],
)
def test_malformed_templates_are_refused_with_the_column(text: str, expected: str) -> None:
    with pytest.raises(TransformError) as caught:
        compile_spec({"template": "slack", "text": text})
    assert caught.value.errors == {"text": [expected]}


def test_a_bad_placeholder_expression_shows_its_caret() -> None:
    with pytest.raises(TransformError) as caught:
        compile_spec({"template": "slack", "text": "Score {data.score ]}"})
    assert caught.value.errors["text"] == [
        "placeholder at column 6: Unexpected token: ] at column 11:\ndata.score ]\n           ^"
    ]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"template": "whatsapp", "text": "x"}, "template"),
        ({"template": "slack"}, "text"),
        ({"text": "x"}, "text"),
        ({"template": "slack", "text": "x", "mapping": {"a": "type"}}, "template"),
        ({"template": "slack", "text": "x" * 5000}, "text"),
    ],
)
def test_inconsistent_template_specs_are_refused(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(TransformError) as caught:
        compile_spec(spec)
    assert field in caught.value.errors


def test_a_failing_placeholder_raises_our_error_from_body() -> None:
    transform = compile_spec({"template": "text", "text": "{join(', ', data.score)}"})
    with pytest.raises(TransformError) as caught:
        transform.body(RATING)
    assert list(caught.value.errors) == ["text"]
