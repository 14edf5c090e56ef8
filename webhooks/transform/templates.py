"""Text templates with ``{placeholders}`` and the message presets for Slack, Teams and Discord.

A placeholder is a JMESPath expression over the envelope (or over one list item in a mapping's
``join``): ``{data.visitor.name}``. A null result renders as ""; ``{data.topic || 'none'}``
gives a fallback. Strings render as they are, numbers and booleans as JSON, arrays and objects
as compact JSON. ``{{`` and ``}}`` are literal braces.

Presets wrap the rendered text in each platform's incoming-webhook shape and cut it, with a
trailing "…", to the platform's limit. Slack: values (not the template's own text) have
``& < >`` escaped, so a visitor cannot write ``<!channel>``. Discord: mentions are switched off.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .expressions import Evaluator, Expression, TransformError, compile_expression
from .functions import SizeExceeded, dumps, measure

__all__ = ["TextTemplate", "Preset", "PRESETS", "render_value", "MAX_TEMPLATE_CHARS", "MAX_RENDERED_CHARS"]

MAX_TEMPLATE_CHARS = 4_000
MAX_PLACEHOLDERS = 50
MAX_RENDERED_CHARS = 262_144
_QUOTES = {"'", '"', "`"}


def render_value(value: Any) -> str:
    """The text a placeholder shows for ``value``; raises SizeExceeded for a huge array or object."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        measure(value, MAX_RENDERED_CHARS)
    return dumps(value)


def _placeholder_end(text: str, start: int) -> int:
    """Index of the ``}`` closing the placeholder opened at ``start``, skipping nested braces and quotes."""
    depth = 0
    quote = None
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in _QUOTES:
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


class TextTemplate:
    """A compiled template: literal text and expressions in turn."""

    __slots__ = ("source", "_parts")

    def __init__(self, source: str, parts: tuple[str | Expression, ...]) -> None:
        self.source = source
        self._parts = parts

    @classmethod
    def compile(cls, source: object, where: str) -> "TextTemplate":
        """Parse ``source``; raises TransformError (under ``where``) naming the column at fault."""
        if not isinstance(source, str):
            raise TransformError(where, f"must be text, not {type(source).__name__}")
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TransformError(where, f"template is {len(source)} characters, over the limit of {MAX_TEMPLATE_CHARS}")
        parts: list[str | Expression] = []
        literal: list[str] = []
        i = 0
        while i < len(source):
            ch = source[i]
            if source.startswith("{{", i) or source.startswith("}}", i):
                literal.append(ch)
                i += 2
            elif ch == "}":
                raise TransformError(where, f"single '}}' at column {i}; write '}}}}' for a literal brace")
            elif ch == "{":
                end = _placeholder_end(source, i)
                if end < 0:
                    raise TransformError(where, f"placeholder opened at column {i} is never closed")
                expression = source[i + 1 : end].strip()
                if not expression:
                    raise TransformError(where, f"empty placeholder at column {i}")
                try:
                    compiled = compile_expression(expression, where)
                except TransformError as exc:
                    raise TransformError(where, f"placeholder at column {i}: {exc.errors[where][0]}") from None
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(compiled)
                if sum(isinstance(p, Expression) for p in parts) > MAX_PLACEHOLDERS:
                    raise TransformError(where, f"more than {MAX_PLACEHOLDERS} placeholders")
                i = end + 1
            else:
                literal.append(ch)
                i += 1
        if literal:
            parts.append("".join(literal))
        return cls(source, tuple(parts))

    def expressions(self) -> list[str]:
        """The source of each placeholder's expression, in order."""
        return [part.source for part in self._parts if isinstance(part, Expression)]

    def render(self, value: Any, evaluator: Evaluator, escape: Callable[[str], str] | None = None) -> str:
        """Fill the placeholders from ``value``; ``escape`` is applied to filled-in text only.

        Raises TransformError if an expression fails or the text passes ``MAX_RENDERED_CHARS``.
        """
        out: list[str] = []
        size = 0
        for part in self._parts:
            if isinstance(part, str):
                piece = part
            else:
                try:
                    piece = render_value(part.search(value, evaluator))
                except SizeExceeded:
                    raise TransformError(part.where, "a placeholder's value is too large") from None
                if escape is not None:
                    piece = escape(piece)
            size += len(piece)
            if size > MAX_RENDERED_CHARS:
                raise TransformError(self._where(), f"rendered text is over {MAX_RENDERED_CHARS} characters")
            out.append(piece)
        return "".join(out)

    def _where(self) -> str:
        for part in self._parts:
            if isinstance(part, Expression):
                return part.where
        return "template"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Preset:
    """A platform's message shape: ``shape(text)`` is the JSON body; text is cut to ``max_chars``."""

    name: str
    max_chars: int
    shape: Callable[[str], dict[str, Any]]
    escape: Callable[[str], str] | None = None

    def body(self, template: TextTemplate, envelope: Any, evaluator: Evaluator) -> dict[str, Any]:
        """Render ``template`` over ``envelope`` into this platform's shape. Raises TransformError."""
        return self.shape(_cut(template.render(envelope, evaluator, self.escape), self.max_chars))


def _teams(text: str) -> dict[str, Any]:
    # An Adaptive Card in a "message": the one shape both Teams Workflows webhooks and the older
    # Office 365 connector webhooks accept (Workflows refuse MessageCard and bare {"text": ...}).
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.2",
        "body": [{"type": "TextBlock", "text": text, "wrap": True}],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}],
    }


PRESETS: dict[str, Preset] = {
    "text": Preset("text", 40_000, lambda text: {"text": text}),
    "slack": Preset("slack", 40_000, lambda text: {"text": text}, _slack_escape),
    "teams": Preset("teams", 20_000, _teams),
    "discord": Preset("discord", 2_000, lambda text: {"content": text, "allowed_mentions": {"parse": []}}),
}
