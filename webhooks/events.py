"""The event catalogue: which event types exist, what their ``data`` holds, and the envelope.

Catalogue types have a marshmallow schema each (unknown fields are refused); ``custom.<name>``
types carry any JSON object. ``validate`` returns cleaned, JSON-ready data (datetimes stay
ISO-8601 strings), so the envelope can be serialized with the stdlib ``json``.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any, Mapping

from marshmallow import Schema, fields, validate as v
from marshmallow import ValidationError as MarshmallowError

from .errors import PayloadTooLarge, UnknownEventType, ValidationError
from .ids import new_id
from .settings import get_settings
from .samples import SAMPLES

__all__ = [
    "EVENT_TYPES",
    "CUSTOM_PREFIX",
    "is_known_type",
    "validate",
    "build_envelope",
    "serialize",
    "check_size",
    "check_size_cheaply",
    "MAX_LISTED_ERRORS",
    "sample",
]

CUSTOM_PREFIX = "custom."
_CUSTOM_NAME_RE = re.compile(r"^[a-zA-Z0-9_]+(\.[a-zA-Z0-9_]+)*\Z")
_EVENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}\Z")
_MAX_TYPE_CHARS = 200
_MAX_CUSTOM_DEPTH = 32
_MAX_PATH_PART_CHARS = 64
MAX_LISTED_ERRORS = 50
"""A ValidationError lists at most this many bad fields, then says how many more there are."""
_ENVELOPE_OVERHEAD_BYTES = 60  # {"data":…,"id":"evt_…","timestamp":"…","type":"…"} at least

# Past this many bits an integer may have more decimal digits than Python will write
# (sys.get_int_max_str_digits(), 4300 by default): json.dumps would raise a raw ValueError.
_LONG_INT_BITS = 14_000
_LONG_INT = "integer too long to write as JSON (more than 4300 digits)"

_NAME = v.Length(min=1, max=200)
_ID = v.Length(min=1, max=200)
_TEXT = v.Length(max=20_000)


def _writable_int(value: int) -> bool:
    """False if ``value`` has more digits than Python converts to text."""
    if value.bit_length() <= _LONG_INT_BITS:
        return True
    try:
        str(value)
    except ValueError:
        return False
    return True


class _IsoDateTime(fields.AwareDateTime):
    """An ISO-8601 datetime with an offset, kept as a normalized ISO string (JSON-ready)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        parsed: datetime = super()._deserialize(value, attr, data, **kwargs)
        return parsed.isoformat().replace("+00:00", "Z")


class _StrictInt(fields.Integer):
    """An integer that refuses booleans, floats and numeric strings."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int) and not _writable_int(value):
            raise MarshmallowError(_LONG_INT)
        return super()._deserialize(value, attr, data, **kwargs)


class _FormAnswer(fields.Field):
    """A pre-chat form answer: a string, a finite number, a boolean or a list of strings."""

    default_error_messages = {"invalid": "Must be a string, a number, a boolean or a list of strings."}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, str):
            if len(value) > 5_000:
                raise MarshmallowError("Longer than maximum length 5000.")
            return value
        if isinstance(value, int):  # bool included: both are answers
            if not _writable_int(value):
                raise MarshmallowError(_LONG_INT)
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        if isinstance(value, list) and len(value) <= 100 and all(
            isinstance(item, str) and len(item) <= 1_000 for item in value
        ):
            return list(value)
        raise self.make_error("invalid")


class _Visitor(Schema):
    id = fields.String(validate=_ID)
    name = fields.String(validate=_NAME)
    email = fields.Email(validate=v.Length(max=320))


class _Agent(Schema):
    id = fields.String(required=True, validate=_ID)
    name = fields.String(required=True, validate=_NAME)
    email = fields.Email(validate=v.Length(max=320))


class _TranscriptMessage(Schema):
    author = fields.String(required=True, validate=_NAME)
    role = fields.String(required=True, validate=v.OneOf(["visitor", "agent", "bot", "system"]))
    text = fields.String(required=True, validate=_TEXT)
    sent_at = _IsoDateTime(required=True)


class ConversationStarted(Schema):
    conversation_id = fields.String(required=True, validate=_ID)
    visitor = fields.Nested(_Visitor)
    page_url = fields.Url(schemes={"http", "https"}, validate=v.Length(max=2_000))
    pre_chat = fields.Dict(keys=fields.String(validate=_NAME), values=_FormAnswer(), validate=v.Length(max=100))
    started_at = _IsoDateTime()


class ConversationEnded(Schema):
    conversation_id = fields.String(required=True, validate=_ID)
    transcript = fields.List(fields.Nested(_TranscriptMessage), validate=v.Length(max=5_000))
    duration_s = _StrictInt(validate=v.Range(min=0))
    tags = fields.List(fields.String(validate=v.Length(min=1, max=100)), validate=v.Length(max=100))
    agent = fields.Nested(_Agent)
    visitor = fields.Nested(_Visitor)
    ended_at = _IsoDateTime()


class MessageSent(Schema):
    conversation_id = fields.String(required=True, validate=_ID)
    message_id = fields.String(validate=_ID)
    author = fields.String(required=True, validate=_NAME)
    role = fields.String(required=True, validate=v.OneOf(["visitor", "agent", "bot"]))
    text = fields.String(required=True, validate=_TEXT)
    sent_at = _IsoDateTime()


class RatingSubmitted(Schema):
    conversation_id = fields.String(required=True, validate=_ID)
    score = _StrictInt(required=True, validate=v.Range(min=1, max=5))
    comment = fields.String(validate=v.Length(max=5_000))
    # What the conversation was about (the pre-chat topic or the main tag): a rating arrives on
    # its own, and a subscription's transform sees one event, so the backend names it here.
    topic = fields.String(validate=v.Length(min=1, max=200))
    visitor = fields.Nested(_Visitor)
    agent = fields.Nested(_Agent)


class ConversationAssigned(Schema):
    conversation_id = fields.String(required=True, validate=_ID)
    agent = fields.Nested(_Agent, required=True)
    previous_agent = fields.Nested(_Agent)
    reason = fields.String(required=True, validate=v.OneOf(["assigned", "transferred"]))


class WebhookTest(Schema):
    message = fields.String(required=True, validate=v.Length(min=1, max=1_000))


# Schemas are stateless once built; one instance each is reused for speed.
_SCHEMAS: dict[str, Schema] = {
    "conversation.started": ConversationStarted(),
    "conversation.ended": ConversationEnded(),
    "message.sent": MessageSent(),
    "rating.submitted": RatingSubmitted(),
    "conversation.assigned": ConversationAssigned(),
    "webhook.test": WebhookTest(),
}

EVENT_TYPES: tuple[str, ...] = tuple(_SCHEMAS)


def _custom_name_ok(event_type: str) -> bool:
    return (
        event_type.startswith(CUSTOM_PREFIX)
        and len(event_type) <= _MAX_TYPE_CHARS
        and _CUSTOM_NAME_RE.match(event_type[len(CUSTOM_PREFIX):]) is not None
    )


def is_known_type(event_type: str) -> bool:
    """True if ``event_type`` is in the catalogue or is a well-formed ``custom.<name>``."""
    return isinstance(event_type, str) and (event_type in _SCHEMAS or _custom_name_ok(event_type))


def _check_type(event_type: object) -> str:
    if isinstance(event_type, str) and is_known_type(event_type):
        return event_type
    valid = ", ".join(EVENT_TYPES)
    if isinstance(event_type, str) and event_type.startswith(CUSTOM_PREFIX):
        reason = "custom event names are dot-separated parts of letters, digits and '_' (e.g. custom.order_paid)"
        raise UnknownEventType(f"invalid custom event type: {reason}", {"type": [reason]})
    raise UnknownEventType(
        f"unknown event type; valid types are {valid}, or custom.<name>",
        {"type": [f"must be one of {valid}, or custom.<name>"]},
    )


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Marshmallow's nested error dict as {"transcript.3.role": [...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, sub in messages.items():
            part = "" if key == "_schema" else str(key)[:_MAX_PATH_PART_CHARS]
            path = ".".join(p for p in (prefix, part) if p)
            for k, msgs in _flatten(sub, path).items():
                out.setdefault(k, []).extend(msgs)
    else:
        items = messages if isinstance(messages, list) else [messages]
        out[prefix or "data"] = [str(m) for m in items]
    return out


def _invalid(event_type: str, errors: dict[str, list[str]]) -> ValidationError:
    """One ValidationError listing at most MAX_LISTED_ERRORS fields, plus a count of the rest
    (a million bad fields must not make a megabyte-long message)."""
    paths = sorted(errors)
    shown = {path: errors[path][:3] for path in paths[:MAX_LISTED_ERRORS]}
    names = ", ".join(f"{path} ({'; '.join(msgs)})" for path, msgs in shown.items())
    rest = len(paths) - len(shown)
    if rest > 0:
        names += f", and {rest} more fields"
        shown["_more"] = [f"{rest} more fields not listed"]
    return ValidationError(f"invalid {event_type} data: {names}", shown)


def _clean_json(value: Any, path: str, depth: int, errors: dict[str, list[str]]) -> Any:
    """A deep copy of ``value`` if it is plain JSON; records each bad spot in ``errors``."""
    where = path or "data"
    if depth > _MAX_CUSTOM_DEPTH:
        errors[where] = [f"nested deeper than {_MAX_CUSTOM_DEPTH} levels"]
        return None
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if not _writable_int(value):
            errors[where] = [_LONG_INT]
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            errors[where] = ["not a finite number"]
        return value
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            sub_path = ".".join(p for p in (path, str(key)[:_MAX_PATH_PART_CHARS]) if p)
            if not isinstance(key, str):
                errors[sub_path] = ["object keys must be strings"]
                continue
            out[key] = _clean_json(sub, sub_path, depth + 1, errors)
        return out
    if isinstance(value, (list, tuple)):
        return [_clean_json(item, f"{path}.{i}" if path else str(i), depth + 1, errors) for i, item in enumerate(value)]
    errors[where] = [f"not JSON-serializable ({type(value).__name__})"]
    return None


def check_size_cheaply(data: object, limit: int) -> None:
    """Raise PayloadTooLarge when ``data`` cannot serialize to ``limit`` bytes or fewer.

    A bounded, iterative walk that adds up a lower bound of the JSON size (every string's
    characters and quotes, every key, bracket, colon and comma; numbers by their digits) and
    stops as soon as the bound passes ``limit``: it visits at most about ``limit`` values,
    whatever their number or depth, and never builds the JSON. Run before validation, so an
    oversized event (a million-message transcript) is refused before any schema work.
    """
    total = _ENVELOPE_OVERHEAD_BYTES
    stack: list[object] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            total += len(value) + 2
        elif isinstance(value, dict):
            total += 2 + max(len(value) - 1, 0)
            for key, sub in value.items():
                total += (len(key) if isinstance(key, str) else 1) + 3  # "key":
                stack.append(sub)
                if total > limit:
                    break
        elif isinstance(value, (list, tuple)):
            total += 2 + max(len(value) - 1, 0)
            if total <= limit:
                stack.extend(value)
        elif isinstance(value, bool) or value is None:
            total += 4
        elif isinstance(value, int):
            total += max(1, int(value.bit_length() * 0.30102) )  # decimal digits, at least
        else:
            total += 1
        if total > limit:
            raise PayloadTooLarge(total, limit, at_least=True)


def validate(event_type: str, data: object) -> dict[str, Any]:
    """Validate ``data`` for ``event_type`` and return it cleaned and JSON-ready.

    Raises UnknownEventType if the type is neither in the catalogue nor ``custom.<name>``;
    ValidationError whose ``errors`` maps every bad field (dotted path, e.g.
    ``transcript.3.role``) to its messages.
    """
    event_type = _check_type(event_type)
    if not isinstance(data, dict):
        raise _invalid(event_type, {"data": ["must be a JSON object"]})
    schema = _SCHEMAS.get(event_type)
    if schema is None:
        errors: dict[str, list[str]] = {}
        cleaned = _clean_json(data, "", 0, errors)
        if errors:
            raise _invalid(event_type, errors)
    else:
        try:
            cleaned = schema.load(data)
        except MarshmallowError as exc:
            raise _invalid(event_type, _flatten(exc.messages)) from None
    try:
        # Cheap even for a 50 KB transcript, and catches lone surrogates no schema field checks.
        json.dumps(cleaned, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(event_type, {"data": ["text holds a lone surrogate (not valid Unicode)"]}) from None
    except (TypeError, ValueError) as exc:  # a value no field above checked: still our error
        raise _invalid(event_type, {"data": [f"not writable as JSON: {str(exc)[:200]}"]}) from None
    return cleaned  # type: ignore[no-any-return]


def _utc_iso(now: datetime) -> str:
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)  # naive means UTC here, as documented
    return now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_envelope(
    event_type: str,
    data: object,
    *,
    event_id: str | None = None,
    now: datetime | None = None,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Validate ``data`` and wrap it as ``{"id", "type", "timestamp", "data"}``.

    Before any validation, ``check_size_cheaply`` refuses data that cannot fit in
    ``max_bytes`` (default ``WEBHOOKS_MAX_PAYLOAD_BYTES``) with PayloadTooLarge; the exact
    size of the serialized envelope is still checked by the caller (``check_size``).

    ``event_id`` defaults to a new ``evt_…`` id; a caller's own id (an idempotency key) must be
    1-100 characters of letters, digits, '_' and '-'. ``now`` (naive means UTC) defaults to the
    current time; the timestamp is ISO-8601 UTC ending in 'Z'.
    Raises UnknownEventType, PayloadTooLarge or ValidationError (see ``validate``).
    """
    _check_type(event_type)
    check_size_cheaply(data, get_settings().max_payload_bytes if max_bytes is None else max_bytes)
    cleaned = validate(event_type, data)
    if event_id is None:
        event_id = new_id("evt")
    elif not isinstance(event_id, str) or not _EVENT_ID_RE.match(event_id):
        raise ValidationError(
            "event id must be 1-100 characters of letters, digits, '_' and '-'",
            {"id": ["must match [A-Za-z0-9_-]{1,100}"]},
        )
    return {
        "id": event_id,
        "type": event_type,
        "timestamp": _utc_iso(now or datetime.now(timezone.utc)),
        "data": cleaned,
    }


def serialize(envelope: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted UTF-8 JSON of ``envelope``: equal envelopes give equal bytes.

    Raises ValidationError if the envelope is not plain JSON (e.g. NaN, a datetime).
    """
    try:
        text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"envelope is not JSON-serializable: {exc}", {"data": [str(exc)]}) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("envelope holds text that is not valid Unicode", {"data": ["lone surrogate in text"]}) from None


def check_size(body: bytes, limit: int) -> None:
    """Raise PayloadTooLarge if ``body`` is longer than ``limit`` bytes."""
    if len(body) > limit:
        raise PayloadTooLarge(len(body), limit)


def sample(event_type: str) -> dict[str, Any]:
    """Realistic example data for ``event_type`` (any custom type gets ``custom.example``'s).

    Raises UnknownEventType for an unknown type. Returns a fresh copy each call.
    """
    event_type = _check_type(event_type)
    example = SAMPLES.get(event_type, SAMPLES["custom.example"])
    return json.loads(json.dumps(example))  # type: ignore[no-any-return]
