"""The JMESPath functions a spec may call: jmespath's built-ins plus a few for chat events.

Added (each returns null for a null input, so a missing field stays missing):

    format_date(value, format, tz)   ISO-8601 text -> strftime ``format`` in IANA zone ``tz``
                                     (a value without an offset is taken as UTC)
    split(text, sep)                 text -> array of strings
    lower(text), upper(text)
    concat(a, b, ...)                strings, numbers and booleans joined; null counts as ""
    contains_any(subject, keywords)  case-insensitive: does the text (or any string in the array)
                                     contain any keyword? ``keywords`` is a string or an array
    transcript_text(messages)        "author: text" lines joined with a newline

``to_string`` is replaced by a size-bounded version. Messages never quote event data.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jmespath import exceptions as jp_errors
from jmespath import functions as jp_functions
from jmespath.functions import signature

__all__ = ["FUNCTIONS", "ChatFunctions", "FunctionError", "SizeExceeded", "measure", "dumps", "zone"]

MAX_TO_STRING_CHARS = 262_144
MAX_FORMAT_CHARS = 100
_TZ_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}\Z")


class FunctionError(jp_errors.JMESPathError):
    """One of our functions refused its arguments (the message names the function, not the data)."""


class SizeExceeded(Exception):
    """``measure`` went over its limit."""


def measure(value: Any, limit: int) -> int:
    """Approximate JSON size of ``value`` in characters, walked without recursion.

    Shared sub-values count every time they appear, as they would when serialized, so a value
    built to blow up (a list holding itself twice, 100 levels down) stops at ``limit``.
    Raises SizeExceeded past ``limit``.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + len(item)
            for key, sub in item.items():
                total += len(key) + 3 if isinstance(key, str) else 8
                stack.append(sub)
        elif isinstance(item, list):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += 8
        if total > limit:
            raise SizeExceeded()
    return total


def dumps(value: Any) -> str:
    """Compact JSON, as the envelope is serialized but keeping key order (a mapping keeps its own)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; raises FunctionError for a malformed or unknown name."""
    if not _TZ_RE.match(name) or len(name) > 64:
        raise FunctionError("format_date(): the time zone is not an IANA name such as Europe/London")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise FunctionError("format_date(): unknown time zone") from None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return dumps(value)


class ChatFunctions(jp_functions.Functions):
    """jmespath's functions plus ours; stateless, so one instance serves every evaluation."""

    @signature({"types": ["string", "null"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_format_date(self, value: str | None, fmt: str, tz: str) -> str | None:
        if value is None:
            return None
        if len(fmt) > MAX_FORMAT_CHARS:
            raise FunctionError(f"format_date(): format is longer than {MAX_FORMAT_CHARS} characters")
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise FunctionError("format_date(): value is not an ISO-8601 date-time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        try:
            return moment.astimezone(zone(tz)).strftime(fmt)
        except (ValueError, OverflowError):
            raise FunctionError("format_date(): the date cannot be shown in that zone or format") from None

    @signature({"types": ["string", "null"]}, {"types": ["string"]})
    def _func_split(self, text: str | None, sep: str) -> list[str] | None:
        if text is None:
            return None
        if not sep:
            raise FunctionError("split(): the separator must not be empty")
        return text.split(sep)

    @signature({"types": ["string", "null"]})
    def _func_lower(self, text: str | None) -> str | None:
        return None if text is None else text.lower()

    @signature({"types": ["string", "null"]})
    def _func_upper(self, text: str | None) -> str | None:
        return None if text is None else text.upper()

    @signature({"types": ["string", "number", "boolean", "null"], "variadic": True})
    def _func_concat(self, *parts: Any) -> str:
        return "".join(_text(part) for part in parts)

    @signature({"types": ["string", "array", "null"]}, {"types": ["string", "array-string"]})
    def _func_contains_any(self, subject: Any, keywords: str | list[str]) -> bool:
        if subject is None:
            return False
        wanted = [k.casefold() for k in ([keywords] if isinstance(keywords, str) else keywords) if k]
        texts = [subject] if isinstance(subject, str) else [s for s in subject if isinstance(s, str)]
        return any(k in text.casefold() for text in texts for k in wanted)

    @signature({"types": ["array", "null"]})
    def _func_transcript_text(self, messages: list[Any] | None) -> str | None:
        if messages is None:
            return None
        lines = []
        for message in messages:
            if isinstance(message, dict) and message.get("text") is not None:
                author = message.get("author")
                text = _text(message["text"])
                lines.append(f"{_text(author)}: {text}" if author is not None else text)
        return "\n".join(lines)

    @signature({"types": []})
    def _func_to_string(self, arg: Any) -> str:
        if isinstance(arg, str):
            return arg
        try:
            measure(arg, MAX_TO_STRING_CHARS)
        except SizeExceeded:
            raise FunctionError(f"to_string(): result over {MAX_TO_STRING_CHARS} characters") from None
        return dumps(arg)


FUNCTIONS = ChatFunctions()
