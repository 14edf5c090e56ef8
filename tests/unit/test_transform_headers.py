"""Extra headers: static, never ours, never secret-bearing, one line each."""
from __future__ import annotations

import pytest

from webhooks.transform import TransformError, compile_spec


def test_plain_extra_headers_are_kept() -> None:
    headers = {"X-Source": "chat-webhooks", "X-Tenant": "acme 42"}
    assert compile_spec({"headers": headers}).headers() == headers


@pytest.mark.parametrize(
    "name",
    ["webhook-id", "Webhook-Timestamp", "webhook-signature", "Content-Type", "User-Agent", "Host",
     "Content-Length", "Transfer-Encoding", "Connection", "webhook-anything"],
)
def test_our_headers_cannot_be_overridden(name: str) -> None:
    with pytest.raises(TransformError) as caught:
        compile_spec({"headers": {name: "x"}})
    assert caught.value.errors == {f"headers.{name}": [f"{name} is set by chat-webhooks and cannot be overridden"]}


@pytest.mark.parametrize(
    "name",
    ["Authorization", "Proxy-Authorization", "Proxy-Foo", "Cookie", "X-Api-Key", "X-Auth-Token", "X-Client-Secret",
     "X_SESSION_ID", "X-Password", "api_key"],
)
def test_secret_bearing_headers_are_refused(name: str) -> None:
    with pytest.raises(TransformError) as caught:
        compile_spec({"headers": {name: "x"}})
    assert "secret-bearing" in caught.value.errors[f"headers.{name}"][0]


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\x00b", " padded", "naïve", 7])
def test_values_must_be_one_line_of_printable_ascii(value: object) -> None:
    with pytest.raises(TransformError) as caught:
        compile_spec({"headers": {"X-Note": value}})
    assert list(caught.value.errors) == ["headers.X-Note"]


@pytest.mark.parametrize("name", ["", "X Note", "X:Note", "X-Note\r\n", "é"])
def test_names_must_be_http_tokens(name: str) -> None:
    with pytest.raises(TransformError):
        compile_spec({"headers": {name: "x"}})


def test_names_differing_only_in_case_are_refused() -> None:
    with pytest.raises(TransformError) as caught:
        compile_spec({"headers": {"X-A": "1", "x-a": "2"}})
    assert caught.value.errors == {"headers.x-a": ["x-a is given twice (header names ignore case)"]}


def test_too_many_headers_are_refused() -> None:
    with pytest.raises(TransformError):
        compile_spec({"headers": {f"X-H{i}": "v" for i in range(21)}})


def test_headers_returns_a_copy() -> None:
    transform = compile_spec({"headers": {"X-A": "1"}})
    transform.headers()["X-B"] = "2"
    assert transform.headers() == {"X-A": "1"}
