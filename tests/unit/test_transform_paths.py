"""Filters and mappings checked against the event catalogue (issue 13 item 2): a path that no
subscribed catalogue type has is refused with the closest real path; custom events and ``*``
stay free-form; preview names the same problems."""
from __future__ import annotations

from typing import Any

import pytest

from webhooks import subscriptions
from webhooks.errors import ValidationError
from webhooks.preview import preview
from webhooks.subscriptions import Subscription
from webhooks import signing
from webhooks.transform import TransformError
from webhooks.transform.paths import catalogue_types, path_problems

URL = "https://127.0.0.1/x"


@pytest.fixture(autouse=True)
def _store(fake_redis: Any) -> Any:
    return fake_redis


def test_a_misspelt_field_in_a_filter_is_refused_with_the_real_path_suggested() -> None:
    # When a subscription to conversation.ended filters on data.visitor.emial
    with pytest.raises(TransformError) as caught:
        subscriptions.create("acme", URL, ["conversation.ended"], transform={"filter": "data.visitor.emial == 'a@b.c'"})
    # Then it is refused, naming the part, the path, the type and the suggestion
    assert str(caught.value) == ("filter: `data.visitor.emial` cannot exist in conversation.ended events; "
                                 "did you mean `data.visitor.email`?")
    assert caught.value.errors == {"filter": [
        "`data.visitor.emial` cannot exist in conversation.ended events; did you mean `data.visitor.email`?"]}
    # And nothing was stored
    assert subscriptions.list_subscriptions("acme") == []


def test_a_field_no_type_has_is_refused_even_without_a_close_match() -> None:
    with pytest.raises(ValidationError, match=r"`data.nosuchfield` cannot exist in conversation.ended events$"):
        subscriptions.create("acme", URL, ["conversation.ended"], transform={"filter": "data.nosuchfield == 'x'"})


@pytest.mark.parametrize("spec, where, suggestion", [
    ({"mapping": {"email": "data.visitor.emial"}}, "mapping.email", "data.visitor.email"),
    ({"mapping": {"crm": {"who": {"path": "data.agent.nme", "default": "-"}}}}, "mapping.crm.who", "data.agent.name"),
    ({"mapping": {"notes": {"join": "\n", "path": "data.transcript", "item": "{autor}: {text}"}}}, "mapping.notes",
     "data.transcript[].author"),
    ({"mapping": {"title": {"template": "Chat {data.conversation_idd}"}}}, "mapping.title", "data.conversation_id"),
    ({"template": "slack", "text": "Chat with {data.visitr.name}"}, "text", "data.visitor"),
    ({"filter": "data.transcript.text"}, "filter", "data.transcript[].text"),
    ({"filter": "data.transcript[?role == 'agent'].txt | [0]"}, "filter", "data.transcript[].text"),
    ({"filter": "length(sort_by(data.transcript, &sent_att)) > `1`"}, "filter", "data.transcript[].sent_at"),
])
def test_every_place_a_path_can_hide_is_checked(spec: dict[str, Any], where: str, suggestion: str) -> None:
    problems = path_problems(spec, ["conversation.ended"])
    assert list(problems) == [where]
    assert problems[where][0].endswith(f"did you mean `{suggestion}`?")


@pytest.mark.parametrize("events, spec", [
    (["conversation.ended"], {"filter": "contains(data.tags, 'vip') && data.duration_s > `60`"}),
    (["conversation.ended"], {"mapping": {"email": "data.visitor.email", "notes": "transcript_text(data.transcript)",
                                          "last": "data.transcript[-1].text", "id": "id", "at": "timestamp"}}),
    (["rating.submitted", "conversation.ended"], {"filter": "data.score <= `2` || contains(data.tags, 'vip')"}),
    (["conversation.*"], {"filter": "data.agent.name == 'Sam'"}),
    (["conversation.started"], {"filter": "data.pre_chat.anything == 'free-form answers'"}),
    (["custom.order_paid"], {"filter": "data.whatever.you.like"}),
    (["*"], {"filter": "data.nosuchfield"}),
    (["custom.*"], {"mapping": {"x": "data.anything"}}),
])
def test_real_paths_and_free_form_events_pass(events: list[str], spec: dict[str, Any]) -> None:
    sub = subscriptions.create("acme", URL, events, transform=spec)
    assert sub.transform == spec


def test_catalogue_types_of_patterns() -> None:
    assert catalogue_types(["conversation.*"]) == ["conversation.started", "conversation.ended", "conversation.assigned"]
    assert catalogue_types(["rating.submitted", "message.sent"]) == ["rating.submitted", "message.sent"]
    assert catalogue_types(["rating.submitted", "custom.x"]) is None
    assert catalogue_types(["*"]) is None and catalogue_types(["custom.*"]) is None


def test_a_path_one_subscribed_type_has_is_accepted_but_not_when_the_events_change_to_types_without_it() -> None:
    # Given a filter on the rating's score for ratings and ended conversations
    sub = subscriptions.create("acme", URL, ["rating.submitted", "conversation.ended"], transform={"filter": "data.score <= `2`"})
    # When the events are changed to conversation.ended alone, Then the kept filter is refused
    with pytest.raises(TransformError, match="`data.score` cannot exist in conversation.ended events"):
        subscriptions.update("acme", sub.id, events=["conversation.ended"])
    # And an update that does not touch events or transform is not re-checked
    assert subscriptions.update("acme", sub.id, description="ratings").description == "ratings"


def test_update_checks_a_new_transform_against_the_kept_events() -> None:
    sub = subscriptions.create("acme", URL, ["message.sent"])
    with pytest.raises(TransformError, match="did you mean `data.author`"):
        subscriptions.update("acme", sub.id, transform={"filter": "data.autor == 'Sam'"})


def test_preview_names_a_path_the_previewed_type_cannot_have() -> None:
    # Given a subscription saved before paths were checked (or to '*'), filtering on a misspelt field
    sub = Subscription(id="sub_old", account="acme", url=URL, events=("*",), secret=signing.generate_secret(),
                       transform={"filter": "data.scor <= `2`"}, updated_at=1.0)
    # When a rating is previewed
    result = preview(sub, sample_type="rating.submitted")
    # Then it does not pass, and the problem is named with the suggestion
    assert result["accepted"] is False
    assert result["problems"] == ["filter: `data.scor` cannot exist in rating.submitted events; did you mean `data.score`?"]
    # And a custom event is free-form: no problem named
    assert preview(sub, raw_event={"type": "custom.x", "data": {"a": 1}})["problems"] == []
