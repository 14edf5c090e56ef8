"""Standard Webhooks v1: secrets, signing (sender) and verification (receiver).

Signed content is ``f"{webhook-id}.{webhook-timestamp}.{body}"`` over the exact body bytes; each
signature is ``v1,`` + base64(HMAC-SHA256(key, content)), where the key is the base64 part of a
``whsec_…`` secret. During rotation every live secret signs, and the header lists them all,
space-separated. Deliveries made here verify with the ``standardwebhooks`` and ``svix`` packages.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets as _random
import time
from typing import Any, Mapping, Sequence

from .errors import SignatureError, ValidationError

__all__ = [
    "SECRET_PREFIX",
    "TOLERANCE_S",
    "generate_secret",
    "decode_secret",
    "sign",
    "signed_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300
_MIN_KEY_BYTES = 24
_MAX_KEY_BYTES = 64
_MAX_SECRET_CHARS = 200  # whsec_ + base64 of 64 bytes is 94; anything far longer is not a key
# Bounds on what a receiver reads from untrusted headers, so junk costs nothing.
_MAX_ID_CHARS = 256
_MAX_TIMESTAMP_CHARS = 20
_MAX_SIGNATURE_HEADER_CHARS = 8_192
_MAX_SIGNATURES = 32
_SIGNATURE_BYTES = 32  # SHA-256
_MSG_ID_RE = re.compile(r"^[\x21-\x7e]{1,256}\Z")  # visible ASCII: safe in a header, no spaces
_TIMESTAMP_RE = re.compile(r"^[0-9]{1,20}\Z")
_B64_RE = re.compile(r"^[A-Za-z0-9+/]*={0,2}\Z")


def generate_secret() -> str:
    """A new random signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(32)).decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Standard base64 (padding optional) to bytes, or None if it is not that."""
    if not _B64_RE.match(text):
        return None
    text = text.rstrip("=")
    if len(text) % 4 == 1:
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None


def decode_secret(secret: str) -> bytes:
    """The HMAC key inside ``secret`` (``whsec_<base64>``, or bare base64).

    Raises ValidationError (field ``secret``) unless it decodes to 24-64 bytes; the message
    never contains the secret. Returns the key bytes.
    """
    key = None
    if isinstance(secret, str) and len(secret) <= _MAX_SECRET_CHARS:
        encoded = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
        key = _b64decode(encoded)
    if key is None:
        raise ValidationError(
            "secret must be 'whsec_' followed by base64", {"secret": ["not whsec_<base64>"]}
        )
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise ValidationError(
            f"secret key must be {_MIN_KEY_BYTES}-{_MAX_KEY_BYTES} bytes, got {len(key)}",
            {"secret": [f"key is {len(key)} bytes, need {_MIN_KEY_BYTES}-{_MAX_KEY_BYTES}"]},
        )
    return key


def _as_list(secrets: str | Sequence[str]) -> list[str]:
    # A bare string is a Sequence too; iterating it would sign with each character.
    if isinstance(secrets, str):
        return [secrets]
    if isinstance(secrets, (bytes, bytearray)) or not isinstance(secrets, Sequence):
        raise ValidationError("secrets must be a list of whsec_ strings", {"secret": ["not a list of secrets"]})
    return list(secrets)


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode("ascii") + body, hashlib.sha256).digest()


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<b64>`` per secret, space-separated.

    ``secrets`` are the live secrets (one, or two during rotation; a single string is accepted).
    Raises ValidationError for a bad or missing secret (field ``secret``), a ``msg_id`` that is
    not 1-256 visible ASCII characters, a negative or non-integer timestamp, or a non-bytes body.
    """
    keys = [decode_secret(s) for s in _as_list(secrets)]
    if not keys:
        raise ValidationError("at least one secret is needed to sign", {"secret": ["no secret given"]})
    if not isinstance(msg_id, str) or not _MSG_ID_RE.match(msg_id):
        raise ValidationError("msg_id must be 1-256 visible ASCII characters", {"msg_id": ["invalid"]})
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValidationError("timestamp must be a non-negative integer", {"timestamp": ["invalid"]})
    if not isinstance(body, (bytes, bytearray)):
        raise ValidationError("body must be bytes", {"body": ["must be bytes"]})
    stamp = str(timestamp)
    return " ".join(
        "v1," + base64.b64encode(_digest(key, msg_id, stamp, bytes(body))).decode("ascii") for key in keys
    )


def signed_headers(
    secrets: Sequence[str], msg_id: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for sending ``body`` now (or at ``now``, unix s).

    Raises ValidationError as ``sign`` does.
    """
    timestamp = int(time.time() if now is None else now)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, msg_id, timestamp, body),
    }


def _header(headers: Mapping[str, Any], name: str, max_chars: int) -> str:
    """One header by case-insensitive name, as ASCII text within ``max_chars``."""
    found: list[Any] = []
    try:
        for key, value in headers.items():
            if isinstance(key, bytes):
                key = key.decode("latin-1")
            if isinstance(key, str) and key.lower() == name:
                found.append(value)
    except (AttributeError, TypeError):
        raise SignatureError("headers must be a mapping of names to values") from None
    if not found:
        raise SignatureError(f"missing {name} header")
    if len(found) > 1 and any(v != found[0] for v in found[1:]):
        raise SignatureError(f"{name} header given more than once with different values")
    value = found[0]
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    if not isinstance(value, str):
        raise SignatureError(f"{name} header is not text")
    value = value.strip()
    if not value:
        raise SignatureError(f"{name} header is empty")
    if len(value) > max_chars:
        raise SignatureError(f"{name} header is longer than {max_chars} characters")
    if not value.isascii():
        raise SignatureError(f"{name} header is not ASCII")
    return value


def _signatures(header: str) -> list[bytes]:
    """The decoded ``v1`` signatures of a ``webhook-signature`` header; others are skipped."""
    entries = [entry for entry in header.split(" ") if entry]
    if len(entries) > _MAX_SIGNATURES:
        raise SignatureError(f"webhook-signature header lists more than {_MAX_SIGNATURES} signatures")
    found = []
    for entry in entries:
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        decoded = _b64decode(encoded)
        if decoded is not None and len(decoded) == _SIGNATURE_BYTES:
            found.append(decoded)
    if not found:
        raise SignatureError("webhook-signature header holds no well-formed v1 signature")
    return found


def _keys(secret_or_secrets: str | Sequence[str]) -> list[bytes]:
    try:
        keys = [decode_secret(s) for s in _as_list(secret_or_secrets)]
    except ValidationError:
        raise SignatureError("the receiver's secret is not a valid whsec_ secret") from None
    if not keys:
        raise SignatureError("no secret to verify with")
    return keys


_MAX_SECONDS = 1e12  # ~31,700 years: any tolerance or unix time past it is a mistake


def _finite(value: object) -> bool:
    """A real number of seconds within +-1e12 (an int too large for a float is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    return math.isfinite(number) and abs(number) <= _MAX_SECONDS


def _body_bytes(body: bytes | str) -> bytes:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        try:
            return body.encode("utf-8")
        except UnicodeEncodeError:
            raise SignatureError("body is not valid Unicode text") from None
    raise SignatureError("body must be bytes or str")


def verify(
    secret_or_secrets: str | Sequence[str],
    body: bytes | str,
    headers: Mapping[str, str],
    tolerance_s: int = TOLERANCE_S,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify a received webhook and return its parsed JSON body.

    ``headers`` is any mapping; names are matched case-insensitively. The timestamp must be an
    integer within ``tolerance_s`` of ``now`` (default: the current time), in the past or the
    future. The webhook verifies if any ``v1`` signature matches any of the secrets (rotation).
    Raises SignatureError for every failure (missing or malformed header, stale or future
    timestamp, no match, bad secret format, a body that is not a JSON object); the message
    never contains a secret. Returns the body as a dict.
    """
    if not _finite(tolerance_s) or tolerance_s < 0:
        raise SignatureError("tolerance_s must be a non-negative number of seconds, at most 1e12")
    current = time.time() if now is None else now
    if not _finite(current):
        raise SignatureError("now must be a unix time in seconds, at most 1e12")
    keys = _keys(secret_or_secrets)
    raw = _body_bytes(body)
    msg_id = _header(headers, "webhook-id", _MAX_ID_CHARS)
    stamp = _header(headers, "webhook-timestamp", _MAX_TIMESTAMP_CHARS)
    signatures = _signatures(_header(headers, "webhook-signature", _MAX_SIGNATURE_HEADER_CHARS))
    if not _TIMESTAMP_RE.match(stamp):
        raise SignatureError("webhook-timestamp header is not an integer")
    age = current - int(stamp)
    if age > tolerance_s:
        raise SignatureError(f"webhook timestamp is too old ({int(age)} s, tolerance {tolerance_s} s)")
    if -age > tolerance_s:
        raise SignatureError(f"webhook timestamp is in the future ({int(-age)} s, tolerance {tolerance_s} s)")
    expected = [_digest(key, msg_id, stamp, raw) for key in keys]
    # Check every pair without stopping early, so timing says nothing about which one matched.
    matched = False
    for digest in expected:
        for signature in signatures:
            matched |= hmac.compare_digest(digest, signature)
    if not matched:
        raise SignatureError("no signature matches")
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SignatureError("body is not valid UTF-8 JSON") from None
    if not isinstance(parsed, dict):
        raise SignatureError("body is not a JSON object")
    return parsed
