"""Static extra request headers per subscription: checked so they can neither override ours nor carry secrets.

Refused: the headers we set or the HTTP client owns (``webhook-*``, content-type, user-agent,
host, content-length, hop-by-hop ones), and secret-bearing ones (authorization, cookie,
``proxy-*``, and any name containing auth, token, secret, password, apikey, session or
signature). Extra headers are stored in plain text and shown by the CLI, unlike the signing
secret, so they must not hold credentials. Names must be HTTP tokens; values single-line
printable ASCII.
"""
from __future__ import annotations

import re

from .expressions import TransformError

__all__ = ["check_headers", "MAX_HEADERS", "MAX_HEADER_VALUE_CHARS"]

MAX_HEADERS = 20
MAX_HEADER_NAME_CHARS = 64
MAX_HEADER_VALUE_CHARS = 1_024

_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VALUE_RE = re.compile(r"^[\t\x20-\x7e]*\Z")
_OURS = {
    "content-type", "content-length", "content-encoding", "user-agent", "host", "accept-encoding",
    "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect",
}
_SECRET_WORDS = ("auth", "token", "secret", "password", "passwd", "apikey", "cookie", "session", "signature")


def _refusal(name: str) -> str | None:
    lowered = name.lower()
    squashed = re.sub(r"[-_.]", "", lowered)
    if lowered.startswith("webhook-") or lowered in _OURS:
        return "is set by chat-webhooks and cannot be overridden"
    if lowered.startswith("proxy-") or any(word in squashed for word in _SECRET_WORDS):
        return "looks secret-bearing; extra headers are stored in plain text"
    return None


def check_headers(headers: object) -> dict[str, str]:
    """Validate ``headers`` and return them as a new dict. Raises TransformError under ``headers.<name>``."""
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise TransformError("headers", f"must be an object of name -> value, not {type(headers).__name__}")
    if len(headers) > MAX_HEADERS:
        raise TransformError("headers", f"at most {MAX_HEADERS} extra headers")
    seen: set[str] = set()
    for name, value in headers.items():
        where = f"headers.{name}"
        if not isinstance(name, str) or not _TOKEN_RE.match(name) or len(name) > MAX_HEADER_NAME_CHARS:
            raise TransformError(where, f"a header name is 1-{MAX_HEADER_NAME_CHARS} letters, digits or !#$%&'*+-.^_`|~")
        refusal = _refusal(name)
        if refusal:
            raise TransformError(where, f"{name} {refusal}")
        if name.lower() in seen:
            raise TransformError(where, f"{name} is given twice (header names ignore case)")
        seen.add(name.lower())
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE_CHARS:
            raise TransformError(where, f"a header value is text of at most {MAX_HEADER_VALUE_CHARS} characters")
        if not _VALUE_RE.match(value) or value != value.strip():
            raise TransformError(where, "a header value must be one line of printable ASCII (no CR, LF or control characters) without surrounding spaces")
    return dict(headers)
