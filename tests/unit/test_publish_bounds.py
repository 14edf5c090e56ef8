"""publish() does bounded work in the chat backend's process (issue 10 item 5).

No timing asserts: the tests count work (schema loads, filter evaluation steps) instead.
"""
from __future__ import annotations

from typing import Any

import pytest

import webhooks
from webhooks import events, subscriptions
from webhooks.enqueue import DELIVERIES_QUEUE
from webhooks.transform import expressions
from webhooks.transform.filters import FILTER_MAX_STEPS, PUBLISH_FILTER_STEPS

MESSAGE = {"author": "Ana", "role": "agent", "text": "Hello, how can I help?", "sent_at": "2024-05-01T10:00:00Z"}


@pytest.fixture
def schema_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every schema load publish() makes."""
    seen: list[str] = []
    for name, schema in events._SCHEMAS.items():
        real = schema.load

        def spy(data: Any, *args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            seen.append(_name)
            return _real(data, *args, **kwargs)

        monkeypatch.setattr(schema, "load", spy)
    return seen


def test_a_million_message_transcript_is_refused_before_validation(fake_redis: Any, schema_loads: list[str]) -> None:
    # Given a subscriber, and a transcript of 1,000,000 messages (shared dicts: cheap to build)
    subscriptions.create("acme", "https://127.0.0.1/a", ["*"])
    data = {"conversation_id": "c1", "transcript": [MESSAGE] * 1_000_000}
    # When it is published
    with pytest.raises(webhooks.PayloadTooLarge) as caught:
        webhooks.publish("acme", "conversation.ended", data)
    # Then it is refused by the cheap size check: no schema ran, nothing was enqueued
    assert schema_loads == []
    assert caught.value.at_least and caught.value.size > caught.value.limit
    assert "at least" in str(caught.value)
    assert fake_redis.llen(DELIVERIES_QUEUE) == 0


def test_a_deep_oversized_custom_event_is_refused_without_recursion(fake_redis: Any) -> None:
    deep: Any = "x" * 1000
    for _ in range(100_000):
        deep = [deep, "y" * 10]
    with pytest.raises(webhooks.PayloadTooLarge):
        webhooks.publish("acme", "custom.deep", {"v": deep})


def test_an_event_under_the_limit_is_validated_as_before(fake_redis: Any, schema_loads: list[str]) -> None:
    data = {"conversation_id": "c1", "transcript": [MESSAGE] * 100}
    webhooks.publish("acme", "conversation.ended", data)
    assert schema_loads == ["conversation.ended"]


def test_the_cheap_check_never_refuses_what_fits() -> None:
    # A lower bound: data whose exact serialized envelope is just under the limit passes
    data = {"text": "é" * 1000, "n": [10**30, -5, 1.5, True, None], "nested": {"a": {"b": []}}}
    envelope = events.build_envelope("custom.fits", data)
    size = len(events.serialize(envelope))
    events.check_size_cheaply(data, size)


def test_a_thousand_bad_fields_list_fifty_and_count_the_rest(fake_redis: Any) -> None:
    data = {f"field{i:04d}": float("nan") for i in range(2000)}
    with pytest.raises(webhooks.ValidationError) as caught:
        webhooks.publish("acme", "custom.bad", data)
    errors = caught.value.errors
    assert len([k for k in errors if k != "_more"]) == events.MAX_LISTED_ERRORS
    assert errors["_more"] == ["1950 more fields not listed"]
    assert str(caught.value).endswith("and 1950 more fields")
    assert len(str(caught.value)) < 5_000


# --- one work budget for all of an account's filters --------------------------------------
HEAVY = "length(data.items[?@ == `-1`]) > `0`"  # ~3 steps per item: 7,500 for 2,500 items
ITEMS = list(range(2500))


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every evaluation step any filter takes."""
    count = [0]
    real = expressions.Evaluator.visit

    def visit(self: expressions.Evaluator, node: Any, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return real(self, node, *args, **kwargs)

    monkeypatch.setattr(expressions.Evaluator, "visit", visit)
    return count


def test_heavy_filters_share_one_budget_then_the_rest_are_enqueued_unfiltered(fake_redis: Any, steps: list[int], caplog: pytest.LogCaptureFixture) -> None:
    # Given 100 subscriptions whose filter walks 2,500 items and does not match
    for i in range(100):
        subscriptions.create("acme", f"https://127.0.0.1/s{i}", ["custom.batch"], transform={"filter": HEAVY})
    one_filter = _steps_of_one(steps)
    assert FILTER_MAX_STEPS > one_filter > PUBLISH_FILTER_STEPS / 10
    steps[0] = 0
    # When one event is published
    published = webhooks.publish("acme", "custom.batch", {"items": ITEMS})
    # Then all the filters together took at most the shared budget
    assert steps[0] <= PUBLISH_FILTER_STEPS + 1
    # And the subscriptions whose filter ran got nothing; every other one got the event unfiltered
    decided = PUBLISH_FILTER_STEPS // one_filter
    assert published.deliveries == 100 - decided
    assert "unfiltered" in caplog.text and "acme" in caplog.text


def _steps_of_one(steps: list[int]) -> int:
    from webhooks.transform import compile_spec

    steps[0] = 0
    assert compile_spec({"filter": HEAVY}).accepts(events.build_envelope("custom.batch", {"items": ITEMS})) is False
    return steps[0]


def test_cheap_filters_are_all_decided(fake_redis: Any) -> None:
    # Given 200 subscriptions with a cheap filter, half of them matching
    for i in range(200):
        flt = "data.team == 'sales'" if i % 2 else "data.team == 'support'"
        subscriptions.create("acme", f"https://127.0.0.1/s{i}", ["custom.lead"], transform={"filter": flt})
    # When an event for sales is published, every filter is decided: exactly half match
    assert webhooks.publish("acme", "custom.lead", {"team": "sales"}).deliveries == 100
