"""Standard Webhooks v1 signing: round trips, the reference package both ways, and hostile input."""
from __future__ import annotations

import base64
import json
import traceback
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from webhooks import signing
from webhooks.errors import SignatureError, ValidationError

NOW = 1_714_555_200.0  # 2024-05-01T09:20:00Z, a fixed clock
BODY = json.dumps({"id": "evt_1", "type": "webhook.test", "data": {"message": "héllo"}}, ensure_ascii=False).encode()
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()


def headers(secrets: list[str] | None = None, msg_id: str = "msg_abc", body: bytes = BODY, at: float = NOW) -> dict[str, str]:
    return signing.signed_headers(secrets or [SECRET], msg_id, body, now=at)


# --- secrets -----------------------------------------------------------------------------


def test_generated_secrets_are_prefixed_32_random_bytes() -> None:
    first, second = signing.generate_secret(), signing.generate_secret()
    assert first.startswith("whsec_") and first != second
    assert len(signing.decode_secret(first)) == 32


def test_decode_secret_accepts_prefixed_bare_and_unpadded() -> None:
    key = bytes(range(25))  # 25 bytes: base64 needs padding
    encoded = base64.b64encode(key).decode()
    assert encoded.endswith("=")
    assert signing.decode_secret("whsec_" + encoded) == key
    assert signing.decode_secret(encoded) == key
    assert signing.decode_secret("whsec_" + encoded.rstrip("=")) == key


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_" + base64.b64encode(b"k" * 23).decode(),  # too short
        "whsec_" + base64.b64encode(b"k" * 65).decode(),  # too long
        "whsec_not*base64!",
        "whsec_",
        "",
        "whsec_" + "A" * 5,  # impossible base64 length
        "whsec_ÄÖÜ" + "A" * 40,
        "whsec_" + "A" * 10_000,
        None,
        b"whsec_AAAA",
    ],
)
def test_decode_secret_refuses_bad_secrets_without_echoing_them(secret: Any) -> None:
    with pytest.raises(ValidationError) as info:
        signing.decode_secret(secret)
    assert list(info.value.errors) == ["secret"]
    if isinstance(secret, str) and len(secret) > len("whsec_"):
        assert secret[6:] not in str(info.value)
        assert secret[6:] not in repr(info.value.errors)


# --- signing -----------------------------------------------------------------------------


def test_sign_matches_the_spec_formula() -> None:
    # Given the spec's content "{id}.{timestamp}.{body}" and the key behind whsec_
    content = b"msg_abc.1714555200." + BODY
    import hashlib
    import hmac

    expected = base64.b64encode(hmac.new(bytes(range(32)), content, hashlib.sha256).digest()).decode()
    # When signed, then the header is exactly "v1,<that>"
    assert signing.sign([SECRET], "msg_abc", 1_714_555_200, BODY) == f"v1,{expected}"


def test_signed_headers_shape() -> None:
    assert headers() == {
        "webhook-id": "msg_abc",
        "webhook-timestamp": "1714555200",
        "webhook-signature": signing.sign([SECRET], "msg_abc", 1_714_555_200, BODY),
    }


def test_rotation_signs_with_every_live_secret() -> None:
    value = signing.sign([SECRET, OTHER], "msg_abc", 1, BODY)
    first, second = value.split(" ")
    assert first == signing.sign([SECRET], "msg_abc", 1, BODY)
    assert second == signing.sign([OTHER], "msg_abc", 1, BODY)


def test_a_single_secret_string_is_not_split_into_characters() -> None:
    assert signing.sign(SECRET, "m", 1, BODY) == signing.sign([SECRET], "m", 1, BODY)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "secrets, msg_id, timestamp, body, field",
    [
        ([], "m", 1, BODY, "secret"),
        (["whsec_bad"], "m", 1, BODY, "secret"),
        ([SECRET], "", 1, BODY, "msg_id"),
        ([SECRET], "has space", 1, BODY, "msg_id"),
        ([SECRET], "line\nbreak", 1, BODY, "msg_id"),
        ([SECRET], "m", -1, BODY, "timestamp"),
        ([SECRET], "m", 1.5, BODY, "timestamp"),
        ([SECRET], "m", True, BODY, "timestamp"),
        ([SECRET], "m", 1, "text", "body"),
    ],
)
def test_sign_refuses_bad_arguments(secrets: Any, msg_id: Any, timestamp: Any, body: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        signing.sign(secrets, msg_id, timestamp, body)
    assert list(info.value.errors) == [field]


# --- verifying ---------------------------------------------------------------------------


def test_round_trip_returns_the_parsed_body() -> None:
    assert signing.verify(SECRET, BODY, headers(), now=NOW) == json.loads(BODY)


def test_body_may_be_given_as_text() -> None:
    assert signing.verify(SECRET, BODY.decode(), headers(), now=NOW)["data"]["message"] == "héllo"


def test_header_names_are_case_insensitive() -> None:
    mixed = {name.title(): value for name, value in headers().items()}
    assert "Webhook-Signature" in mixed
    assert signing.verify(SECRET, BODY, mixed, now=NOW)["id"] == "evt_1"


def test_rotation_either_secret_verifies() -> None:
    both = headers([SECRET, OTHER])
    assert signing.verify(SECRET, BODY, both, now=NOW)
    assert signing.verify(OTHER, BODY, both, now=NOW)
    assert signing.verify([OTHER, SECRET], BODY, headers([SECRET]), now=NOW)


def test_a_third_secret_does_not_verify() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        signing.verify(signing.generate_secret(), BODY, headers([SECRET, OTHER]), now=NOW)


def test_other_versions_and_malformed_entries_are_skipped() -> None:
    good = headers()
    good["webhook-signature"] = f"v2,abc v1,!!! v1a,xyz  {good['webhook-signature']}"
    assert signing.verify(SECRET, BODY, good, now=NOW)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamps_within_tolerance_verify(offset: int) -> None:
    assert signing.verify(SECRET, BODY, headers(at=NOW + offset), now=NOW)


@pytest.mark.parametrize("offset, word", [(-301, "too old"), (301, "future")])
def test_timestamps_outside_tolerance_fail_both_ways(offset: int, word: str) -> None:
    with pytest.raises(SignatureError, match=word):
        signing.verify(SECRET, BODY, headers(at=NOW + offset), now=NOW)


def test_tolerance_is_configurable() -> None:
    late = headers(at=NOW - 3_600)
    assert signing.verify(SECRET, BODY, late, tolerance_s=3_601, now=NOW)
    with pytest.raises(SignatureError):
        signing.verify(SECRET, BODY, late, tolerance_s=60, now=NOW)


def test_tampered_body_fails() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        signing.verify(SECRET, BODY.replace(b"h\xc3\xa9llo", b"hallo"), headers(), now=NOW)


def test_tampered_id_fails() -> None:
    forged = {**headers(), "webhook-id": "msg_other"}
    with pytest.raises(SignatureError, match="no signature matches"):
        signing.verify(SECRET, BODY, forged, now=NOW)


def test_tampered_timestamp_fails() -> None:
    forged = {**headers(), "webhook-timestamp": str(int(NOW) + 1)}
    with pytest.raises(SignatureError, match="no signature matches"):
        signing.verify(SECRET, BODY, forged, now=NOW)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_header_is_required(name: str) -> None:
    partial = {k: v for k, v in headers().items() if k != name}
    with pytest.raises(SignatureError, match=f"missing {name}"):
        signing.verify(SECRET, BODY, partial, now=NOW)


@pytest.mark.parametrize(
    "name, value, word",
    [
        ("webhook-timestamp", "1714555200.5", "not an integer"),
        ("webhook-timestamp", "-1714555200", "not an integer"),
        ("webhook-timestamp", "١٧١٤٥٥٥٢٠٠", "not ASCII"),  # Arabic-Indic digits
        ("webhook-timestamp", "9" * 25, "longer than"),
        ("webhook-signature", "", "empty"),
        ("webhook-signature", "v1,%%%%", "no well-formed v1"),
        ("webhook-signature", "v1," + base64.b64encode(b"short").decode(), "no well-formed v1"),
        ("webhook-signature", "v1,a " * 2_000, "longer than"),
        ("webhook-signature", "v1,é", "not ASCII"),
        ("webhook-id", "x" * 300, "longer than"),
    ],
)
def test_malformed_headers_fail_with_signature_error(name: str, value: str, word: str) -> None:
    with pytest.raises(SignatureError, match=word):
        signing.verify(SECRET, BODY, {**headers(), name: value}, now=NOW)


def test_duplicate_headers_that_disagree_fail() -> None:
    given = {**headers(), "Webhook-Id": "msg_other"}
    with pytest.raises(SignatureError, match="more than once"):
        signing.verify(SECRET, BODY, given, now=NOW)


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b"[" * 100_000])
def test_signed_body_that_is_not_a_json_object_fails(body: bytes) -> None:
    with pytest.raises(SignatureError, match="body"):
        signing.verify(SECRET, body, headers(body=body), now=NOW)


@pytest.mark.parametrize("secret", ["whsec_short", "", None, [], [SECRET, 42]])
def test_a_bad_receiver_secret_is_a_signature_error(secret: Any) -> None:
    with pytest.raises(SignatureError, match="secret"):
        signing.verify(secret, BODY, headers(), now=NOW)


@pytest.mark.parametrize("bad", [{"now": float("nan")}, {"tolerance_s": -1}, {"tolerance_s": float("inf")}])
def test_nonsense_clock_or_tolerance_fails_closed(bad: dict[str, float]) -> None:
    kwargs: dict[str, Any] = {"now": NOW, **bad}
    with pytest.raises(SignatureError):
        signing.verify(SECRET, BODY, headers(), **kwargs)


def test_secrets_never_appear_in_messages() -> None:
    # Given a valid secret whose key is right but whose use fails in every way
    key_text = SECRET[6:]
    attempts: list[tuple[Any, Any, Any]] = [
        (SECRET, BODY + b" ", headers()),
        (SECRET, BODY, {}),
        (SECRET[:-8], BODY, headers()),
        (SECRET + "AAAA" * 30, BODY, headers()),
        ([SECRET, "whsec_" + key_text[:10]], BODY, headers()),
    ]
    for secret, body, given in attempts:
        with pytest.raises(SignatureError) as info:
            signing.verify(secret, body, given, now=NOW)
        # Then neither the secret nor a chunk of it leaks into the message or a chained cause
        rendered = "".join(traceback.format_exception(info.value))
        assert key_text[:10] not in rendered
        assert info.value.__cause__ is None
        assert info.value.__context__ is None or info.value.__suppress_context__


# --- compatibility with the standardwebhooks package --------------------------------------


def test_our_headers_verify_with_the_standardwebhooks_package() -> None:
    # Given headers we signed for now (that package reads the real clock)
    secret = signing.generate_secret()
    ours = signing.signed_headers([secret], "msg_2Qm", BODY)
    # Then the reference receiver accepts them, also during rotation
    assert Webhook(secret).verify(BODY, ours) == json.loads(BODY)
    rotated = signing.signed_headers([signing.generate_secret(), secret], "msg_2Qm", BODY)
    assert Webhook(secret).verify(BODY, rotated) == json.loads(BODY)


def test_standardwebhooks_signatures_verify_with_ours() -> None:
    # Given a signature made by the reference package
    secret = signing.generate_secret()
    at = datetime.fromtimestamp(NOW, tz=timezone.utc)
    theirs = {
        "webhook-id": "msg_ref",
        "webhook-timestamp": str(int(NOW)),
        "webhook-signature": Webhook(secret).sign("msg_ref", at, BODY.decode()),
    }
    # Then we accept it, and it is byte-identical to ours
    assert signing.verify(secret, BODY, theirs, now=NOW) == json.loads(BODY)
    assert theirs["webhook-signature"] == signing.sign([secret], "msg_ref", int(NOW), BODY)


# --- fuzz --------------------------------------------------------------------------------

header_names = st.sampled_from(["webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE", "x-other"])
header_values = st.one_of(
    st.text(max_size=200),
    st.from_regex(r"\A[0-9]{1,12}\Z"),
    st.from_regex(r"\A(v1,[A-Za-z0-9+/=]{0,50} ?){1,3}\Z"),
    st.binary(max_size=50),
    st.integers(),
    st.none(),
)
header_maps = st.dictionaries(st.one_of(header_names, st.text(max_size=20), st.integers()), header_values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    secret=st.one_of(st.just(SECRET), st.text(max_size=80), st.lists(st.text(max_size=60), max_size=3)),
    body=st.one_of(st.binary(max_size=200), st.text(max_size=200), st.just(BODY)),
    given_headers=st.one_of(header_maps, st.text(max_size=10), st.none(), st.lists(st.text(), max_size=2)),
    now=st.one_of(st.just(NOW), st.floats(), st.integers(min_value=-(10**20), max_value=10**20)),
)
def test_verify_only_ever_raises_signature_error(secret: Any, body: Any, given_headers: Any, now: Any) -> None:
    try:
        result = signing.verify(secret, body, given_headers, now=now)
    except SignatureError:
        return
    assert isinstance(result, dict)


@settings(max_examples=200, deadline=None)
@given(msg_id=st.from_regex(r"\A[A-Za-z0-9_.-]{1,40}\Z"), body=st.binary(max_size=200), offset=st.integers(-300, 300))
def test_fuzzed_valid_signatures_verify_or_fail_only_on_the_body(msg_id: str, body: bytes, offset: int) -> None:
    # Given any id and body, signed within tolerance
    signed = signing.signed_headers([SECRET], msg_id, body, now=NOW + offset)
    try:
        result = signing.verify(SECRET, body, signed, now=NOW)
    except SignatureError as exc:
        # Then the only possible complaint is that the body is not a JSON object
        assert "body" in str(exc)
    else:
        assert result == json.loads(body)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]),
    value=st.one_of(st.text(max_size=300), st.binary(max_size=60), st.from_regex(r"\A[0-9 .eE+-]{0,25}\Z")),
)
def test_one_corrupted_header_among_valid_ones_raises_only_signature_error(name: str, value: Any) -> None:
    # Given otherwise valid headers, with one value replaced by anything
    given_headers = {**headers(), name: value}
    # When verified, then it fails with SignatureError or (if the value was unchanged in effect) verifies
    try:
        signing.verify(SECRET, BODY, given_headers, now=NOW)
    except SignatureError:
        pass


def test_public_names_exist() -> None:
    assert all(hasattr(signing, name) for name in signing.__all__)
