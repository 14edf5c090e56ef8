"""Every bad input raises our error, never a raw one (issue 10 item 6)."""
from __future__ import annotations

import socket
from typing import Any, Callable, Iterator

import pytest

from webhooks import events, signing, subscriptions
from webhooks.errors import SignatureError, StoreUnavailable, UnknownEventType, ValidationError, WebhooksError
from webhooks.transform import compile_spec

HUGE = 10**5000  # 5,001 digits: Python refuses to write it as text (limit 4,300)
SECRET = signing.generate_secret()


# --- integers over 4,300 digits ----------------------------------------------------------
@pytest.mark.parametrize(
    ("event_type", "data", "field"),
    [
        ("custom.order", {"order": {"total": HUGE}}, "order.total"),
        ("custom.order", {"items": [1, HUGE]}, "items.1"),
        ("conversation.ended", {"conversation_id": "c1", "duration_s": HUGE}, "duration_s"),
        ("conversation.started", {"conversation_id": "c1", "pre_chat": {"age": HUGE}}, "pre_chat.age.value"),
    ],
)
def test_an_integer_too_long_for_json_is_a_validation_error_naming_the_field(event_type: str, data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        events.build_envelope(event_type, data)
    assert field in caught.value.errors
    assert "4300 digits" in caught.value.errors[field][0]
    assert len(str(caught.value)) < 500


def test_a_long_but_writable_integer_is_still_accepted() -> None:
    assert events.validate("custom.order", {"n": 10**4000})["n"] == 10**4000


# --- verify() with absurd numbers --------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{"tolerance_s": 10**400}, {"now": 10**400}, {"now": -(10**400)}, {"tolerance_s": 10**13}])
def test_verify_with_an_absurd_tolerance_or_time_raises_signature_error(kwargs: dict[str, Any]) -> None:
    headers = signing.signed_headers([SECRET], "msg_1", b"{}", now=1_700_000_000)
    with pytest.raises(SignatureError) as caught:
        signing.verify(SECRET, b"{}", headers, **kwargs)
    assert "at most 1e12" in str(caught.value)


def test_verify_still_accepts_a_sane_tolerance() -> None:
    headers = signing.signed_headers([SECRET], "msg_1", b"{}", now=1_700_000_000)
    assert signing.verify(SECRET, b"{}", headers, tolerance_s=10**9, now=1_700_000_000) == {}


# --- identifiers anchored with \Z ----------------------------------------------------------
def test_a_type_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(UnknownEventType):
        events.build_envelope("custom.a\n", {})
    assert not events.is_known_type("custom.a\n")


def test_an_event_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        events.build_envelope("custom.a", {}, event_id="evt\n")
    assert "id" in caught.value.errors


@pytest.mark.parametrize("pattern", ["message.sent\n", "message.*\n", "*\n"])
def test_an_event_pattern_with_a_trailing_newline_is_refused(pattern: str) -> None:
    with pytest.raises(ValidationError) as caught:
        subscriptions._check_events([pattern])
    assert "events" in caught.value.errors


def test_a_header_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        compile_spec({"headers": {"X-Foo\n": "1"}})
    assert list(caught.value.errors) == ["headers.X-Foo\n"]


def test_a_signature_timestamp_with_a_trailing_newline_does_not_verify() -> None:
    headers = signing.signed_headers([SECRET], "msg_1", b"{}", now=1_700_000_000)
    assert signing._TIMESTAMP_RE.match("1700000000\n") is None
    assert signing._MSG_ID_RE.match("msg_1\n") is None
    assert signing.verify(SECRET, b"{}", headers, now=1_700_000_000) == {}


# --- the subscriptions API with Redis down -------------------------------------------------
@pytest.fixture
def redis_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings pointing at a loopback port where no Redis listens (a real refused connect)."""
    from webhooks.settings import reload_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("WEBHOOKS_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    monkeypatch.setenv("WEBHOOKS_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("WEBHOOKS_PUBLISH_TIMEOUT_S", "1")
    monkeypatch.setenv("WEBHOOKS_ALLOW_PLAINTEXT_SECRETS", "1")
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


CALLS: list[tuple[str, Callable[[], object]]] = [
    ("create", lambda: subscriptions.create("acme", "https://127.0.0.1:8443/hook", ["message.sent"])),
    ("get", lambda: subscriptions.get("acme", "sub_x")),
    ("list_subscriptions", lambda: subscriptions.list_subscriptions("acme")),
    ("update", lambda: subscriptions.update("acme", "sub_x", description="d")),
    ("disable", lambda: subscriptions.disable("acme", "sub_x")),
    ("enable", lambda: subscriptions.enable("acme", "sub_x")),
    ("delete", lambda: subscriptions.delete("acme", "sub_x")),
    ("rotate_secret", lambda: subscriptions.rotate_secret("acme", "sub_x")),
]


@pytest.mark.parametrize(("name", "call"), CALLS, ids=[n for n, _ in CALLS])
def test_the_subscriptions_api_with_redis_down_raises_store_unavailable(redis_down: None, name: str, call: Callable[[], object]) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        call()
    assert isinstance(caught.value, WebhooksError)
    assert caught.value.operation == f"subscriptions.{name}"
    assert "could not reach Redis" in str(caught.value) and "WEBHOOKS_REDIS_URL" in str(caught.value)
